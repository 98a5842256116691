// A small framework for local fake provider APIs: one node:http server on 127.0.0.1
// and a random port, a JSON router, a request log, and fault injection (status codes
// N times, latency, 429 with Retry-After, a request budget, "act but drop the response").
// Each provider's fake (tests/fakes/<provider>.ts) supplies only its routes and state.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type FakeRequest = {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Record<string, string>;
  rawBody: string;
  /** JSON body when the content type is JSON, form fields (flattened keys) when form-encoded, else null. */
  body: unknown;
  params: Record<string, string>;
};

export type FakeResponse = {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Never answer: the connection stays open until the client gives up or the fake closes. */
  hang?: boolean;
};

export type Route = {
  method: string;
  /** Path pattern with :params, e.g. "/organizations/:id". Matched against the path without the query. */
  path: string;
  handler: (request: FakeRequest) => FakeResponse | Promise<FakeResponse>;
  /** Served at `path` itself, outside the fake's `prefix` (a tenant URL next to the provider's API). */
  unprefixed?: boolean;
};

export type FaultRule = {
  method?: string;
  /** Substring or pattern the request path must match. */
  path?: string | RegExp;
  /** Answer with this status (and `body`, or the fake's standard error body for that status) instead of acting. */
  status?: number;
  body?: unknown;
  /** Seconds sent as Retry-After (with a 429 status, say). */
  retryAfterSeconds?: number;
  /** Act normally but destroy the connection instead of answering: the client never sees the result. */
  dropResponse?: boolean;
  /** Extra delay before handling matching requests. */
  latencyMs?: number;
  /** How many matching requests the rule applies to (default 1). */
  times?: number;
};

export type RecordedRequest = {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
  /** When the fake received it (Date.now()): the clock its rate-limit window runs on. */
  at: number;
  /**
   * While a rate limit is set: how many requests its sliding window held when this one arrived,
   * this one included, as the limit counted them (a 429 answered it when this exceeded the limit).
   */
  windowCount?: number;
  /** True when the rate limit answered this request with 429. */
  rateLimited?: boolean;
};

export type FakeServerOptions = {
  name: string;
  routes: Route[];
  /** The provider's error body for a status (used by injected faults and the rate limit). */
  errorBody: (status: number, message: string) => unknown;
  /** Optional path prefix every route lives under (e.g. "/client/v4", "/v1"). */
  prefix?: string;
};

export type FakeServer = {
  name: string;
  url: string;
  port: number;
  requests: RecordedRequest[];
  inject(rule: FaultRule): void;
  clearFaults(): void;
  setLatency(ms: number): void;
  /** At most `limit` requests per `windowMs` (sliding window); beyond it 429 with Retry-After. */
  setRateLimit(limit: { requests: number; windowMs: number } | null): void;
  /**
   * Highest number of requests handled concurrently, the count of 429s sent by the rate limit,
   * and the highest windowCount of a request the limit let through (0 when no limit was set).
   */
  stats(): { peakConcurrency: number; rateLimited: number; peakPerSecond: number; windowPeak: number };
  close(): Promise<void>;
};

function compile(pattern: string): { regex: RegExp; names: string[] } {
  const names: string[] = [];
  const source = pattern
    .split("/")
    .map((segment) => {
      if (segment.startsWith(":")) {
        names.push(segment.slice(1));
        return "([^/]+)";
      }
      return segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    })
    .join("/");
  return { regex: new RegExp(`^${source}/?$`), names };
}

function parseForm(raw: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(raw)) fields[key] = value;
  return fields;
}

export async function startFakeServer(options: FakeServerOptions): Promise<FakeServer> {
  const routes = options.routes.map((route) => ({ ...route, ...compile((route.unprefixed ? "" : (options.prefix ?? "")) + route.path) }));
  const requests: RecordedRequest[] = [];
  let faults: (FaultRule & { remaining: number })[] = [];
  let latencyMs = 0;
  let rateLimit: { requests: number; windowMs: number } | null = null;
  const recent: number[] = [];
  let inFlight = 0;
  let peakConcurrency = 0;
  let rateLimited = 0;
  let peakPerSecond = 0;
  let windowPeak = 0;
  const sockets = new Set<Socket>();

  const send = (response: ServerResponse, answer: FakeResponse) => {
    const body = answer.body === undefined ? "" : JSON.stringify(answer.body);
    response.writeHead(answer.status, {
      ...(body ? { "content-type": "application/json" } : {}),
      ...answer.headers,
    });
    response.end(body);
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const rawBody = Buffer.concat(chunks).toString("utf8");
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    const method = (request.method ?? "GET").toUpperCase();
    const headers = Object.fromEntries(
      Object.entries(request.headers).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v.join(", ") : (v ?? "")]),
    );
    const contentType = headers["content-type"] ?? "";
    let body: unknown = null;
    if (rawBody && contentType.includes("application/json")) {
      try {
        body = JSON.parse(rawBody);
      } catch {
        body = null;
      }
    } else if (rawBody && contentType.includes("application/x-www-form-urlencoded")) {
      body = parseForm(rawBody);
    }
    const now = Date.now();
    const recorded: RecordedRequest = { method, path: url.pathname, headers, body, at: now };
    requests.push(recorded);

    // The request budget, as the provider enforces it: past the limit, 429 with Retry-After.
    while (recent.length && recent[0] <= now - 1000 * 60 * 60) recent.shift();
    const perSecond = recent.filter((at) => at > now - 1000).length + 1;
    peakPerSecond = Math.max(peakPerSecond, perSecond);
    if (rateLimit) {
      const inWindow = recent.filter((at) => at > now - rateLimit!.windowMs);
      recorded.windowCount = inWindow.length + 1;
      if (inWindow.length >= rateLimit.requests) {
        rateLimited++;
        recorded.rateLimited = true;
        const retryAfter = Math.max(1, Math.ceil((inWindow[0] + rateLimit.windowMs - now) / 1000));
        recent.push(now);
        return send(response, {
          status: 429,
          body: options.errorBody(429, "rate limit exceeded"),
          headers: { "retry-after": String(retryAfter) },
        });
      }
    }
    recent.push(now);
    if (recorded.windowCount !== undefined) windowPeak = Math.max(windowPeak, recorded.windowCount);

    const fault = faults.find(
      (rule) =>
        rule.remaining > 0 &&
        (!rule.method || rule.method.toUpperCase() === method) &&
        (!rule.path || (typeof rule.path === "string" ? url.pathname.includes(rule.path) : rule.path.test(url.pathname))),
    );
    if (fault) fault.remaining--;
    faults = faults.filter((rule) => rule.remaining > 0);

    const delay = latencyMs + (fault?.latencyMs ?? 0);
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));

    if (fault?.status !== undefined) {
      return send(response, {
        status: fault.status,
        body: fault.body ?? options.errorBody(fault.status, `injected ${fault.status}`),
        headers: fault.retryAfterSeconds !== undefined ? { "retry-after": String(fault.retryAfterSeconds) } : {},
      });
    }

    for (const route of routes) {
      if (route.method !== method) continue;
      const match = route.regex.exec(url.pathname);
      if (!match) continue;
      const params = Object.fromEntries(route.names.map((name, i) => [name, decodeURIComponent(match[i + 1])]));
      const answer = await route.handler({ method, path: url.pathname, query: url.searchParams, headers, rawBody, body, params });
      if (fault?.dropResponse) {
        request.socket.destroy();
        return;
      }
      if (answer.hang) return;
      return send(response, answer);
    }
    return send(response, { status: 404, body: options.errorBody(404, `no route ${method} ${url.pathname}`) });
  };

  const server = createServer((request, response) => {
    inFlight++;
    peakConcurrency = Math.max(peakConcurrency, inFlight);
    handle(request, response)
      .catch((error) => {
        if (!response.headersSent) send(response, { status: 500, body: options.errorBody(500, String(error)) });
      })
      .finally(() => inFlight--);
  });
  // The client (undici: 4 s idle) closes idle keep-alive sockets, never the fake: with both ends
  // in one process on a starved CPU, the server's own 5 s close could race a request the client was
  // already writing on that socket, and the client would see a network error no provider sent.
  server.keepAliveTimeout = 0;
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    name: options.name,
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    inject: (rule) => faults.push({ ...rule, remaining: rule.times ?? 1 }),
    clearFaults: () => (faults = []),
    setLatency: (ms) => (latencyMs = ms),
    setRateLimit: (limit) => (rateLimit = limit),
    stats: () => ({ peakConcurrency, rateLimited, peakPerSecond, windowPeak }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

let sequence = 0;
/** A provider-looking id: prefix + 24 lower-case alphanumerics, unique within the process. */
export function fakeId(prefix: string): string {
  sequence++;
  const random = (Math.random().toString(36).slice(2, 11) + Math.random().toString(36).slice(2, 11)).padEnd(18, "0");
  return `${prefix}${sequence.toString(36).padStart(6, "0")}${random}`.slice(0, prefix.length + 24);
}
