// Fake Stripe API for tests: the /v1/webhook_endpoints resource only, speaking Stripe's
// wire format (form-encoded bracket-notation requests, JSON answers, `{error: {...}}`
// bodies, Idempotency-Key replays, cursor lists) on top of startFakeServer. State is in
// memory. It must never call the real Stripe, and never return an endpoint's `secret`
// anywhere but the create answer (and that answer's idempotent replays).
import { randomBytes } from "node:crypto";
import { startFakeServer, type FakeRequest, type FakeResponse, type FakeServer, type Route } from "./base";
import { createIdempotencyStore } from "./idempotency";

export type WebhookEndpointRecord = {
  id: string;
  object: "webhook_endpoint";
  api_version: string | null;
  application: string | null;
  created: number;
  description: string | null;
  enabled_events: string[];
  livemode: boolean;
  metadata: Record<string, string>;
  secret: string;
  status: "enabled" | "disabled";
  url: string;
};

export type StripeFake = FakeServer & {
  endpoints(): WebhookEndpointRecord[];
  /** Delete an endpoint as if someone removed it in the dashboard. */
  deleteEndpointOutOfBand(id: string): void;
};

/** Stripe's parameters: strings, arrays (`a[0]=`) and hashes (`a[b]=`), nested. */
export type StripeParams = { [key: string]: StripeParam };
export type StripeParam = string | StripeParam[] | StripeParams;

const isParams = (value: unknown): value is StripeParams =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** Parse form or query pairs in bracket notation (`metadata[a]=1&events[0]=x&events[]=y`) into nested params. */
export function parseStripeParams(pairs: Iterable<[string, string]>): StripeParams {
  const root: StripeParams = {};
  for (const [key, value] of pairs) {
    const match = /^([^[\]]+)((?:\[[^\]]*\])*)$/.exec(key);
    const path = match ? [match[1], ...[...match[2].matchAll(/\[([^\]]*)\]/g)].map((m) => m[1])] : [key];
    let node = root;
    path.forEach((segment, i) => {
      const name = segment === "" ? String(Object.keys(node).length) : segment;
      if (i === path.length - 1) node[name] = value;
      else {
        if (!isParams(node[name])) node[name] = {};
        node = node[name] as StripeParams;
      }
    });
  }
  const arrays = (value: StripeParam): StripeParam => {
    if (!isParams(value)) return value;
    const keys = Object.keys(value);
    const converted = Object.fromEntries(keys.map((k) => [k, arrays(value[k])]));
    return keys.length > 0 && keys.every((k, i) => k === String(i)) ? keys.map((k) => converted[k]) : converted;
  };
  return arrays(root) as StripeParams;
}

const ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const randomToken = (length: number) => [...randomBytes(length)].map((b) => ALPHANUMERIC[b % 62]).join("");
const EVENT_TYPE = /^(\*|[a-z0-9_]+(\.[a-z0-9_]+)+)$/;
const LIST_URL = "/v1/webhook_endpoints";

type StripeError = { type: string; message: string; code?: string; param?: string; doc_url?: string };
const stripeError = (status: number, error: StripeError): FakeResponse => ({
  status,
  body: { error: error.code ? { ...error, doc_url: `https://stripe.com/docs/error-codes/${error.code.replace(/_/g, "-")}` } : error },
});
const invalid = (message: string, extra: Omit<StripeError, "type" | "message"> = {}) =>
  stripeError(400, { type: "invalid_request_error", message, ...extra });
const missing = (id: string, param = "id") =>
  stripeError(404, { type: "invalid_request_error", code: "resource_missing", param, message: `No such webhook endpoint: '${id}'` });

function unknownParam(params: StripeParams, allowed: string[]): FakeResponse | null {
  const unknown = Object.keys(params).find((k) => !allowed.includes(k));
  return unknown ? invalid(`Received unknown parameter: ${unknown}`, { code: "parameter_unknown", param: unknown }) : null;
}

function urlError(url: StripeParam, livemode: boolean): FakeResponse | null {
  let parsed: URL | null = null;
  try {
    parsed = typeof url === "string" ? new URL(url) : null;
  } catch {
    parsed = null;
  }
  const ok = parsed && (parsed.protocol === "https:" || (!livemode && parsed.protocol === "http:"));
  return ok ? null : invalid(`Invalid URL: ${String(url)}`, { code: "url_invalid", param: "url" });
}

function eventsError(events: StripeParam): FakeResponse | null {
  if (!Array.isArray(events)) return invalid("Invalid array", { param: "enabled_events" });
  const bad = events.findIndex((e) => typeof e !== "string" || !EVENT_TYPE.test(e));
  if (bad >= 0) {
    return invalid(`Invalid enabled_events[${bad}]: must be '*' or a valid event type`, { param: `enabled_events[${bad}]` });
  }
  return null;
}

function metadataError(metadata: StripeParam | undefined): FakeResponse | null {
  if (metadata === undefined || metadata === "") return null;
  if (!isParams(metadata)) return invalid("Invalid hash", { param: "metadata" });
  const entries = Object.entries(metadata);
  if (entries.length > 50) return invalid("Metadata can have at most 50 keys", { param: "metadata" });
  for (const [key, value] of entries) {
    if (typeof value !== "string") return invalid(`Invalid metadata[${key}]: must be a string`, { param: `metadata[${key}]` });
    if (key.length > 40) return invalid("Metadata keys can be at most 40 characters", { param: `metadata[${key}]` });
    if (value.length > 500) return invalid("Metadata values can be at most 500 characters", { param: `metadata[${key}]` });
  }
  return null;
}

/** Stripe's metadata update rules: `metadata[k]=` unsets k, `metadata=` unsets everything. */
function mergeMetadata(current: Record<string, string>, update: StripeParam | undefined): Record<string, string> {
  if (update === undefined) return current;
  if (update === "" || !isParams(update)) return {};
  const next = { ...current };
  for (const [key, value] of Object.entries(update)) {
    if (value === "") delete next[key];
    else next[key] = value as string;
  }
  return next;
}

function maskKey(key: string): string {
  const prefix = /^(sk|rk|pk)_(test|live)_/.exec(key)?.[0] ?? "";
  return `${prefix}${"*".repeat(Math.max(4, key.length - prefix.length - 4))}${key.slice(-4)}`;
}

export async function startStripeFake(options: { secretKey: string; maxEndpoints?: number }): Promise<StripeFake> {
  const endpoints = new Map<string, WebhookEndpointRecord>();
  // Every id ever issued keeps its position, so a cursor naming a since-deleted endpoint still pages on.
  const position = new Map<string, number>();
  const idempotency = createIdempotencyStore();
  const livemode = options.secretKey.startsWith("sk_live_");
  const maxEndpoints = options.maxEndpoints ?? 16;

  const publicView = (endpoint: WebhookEndpointRecord) => {
    const { secret: _secret, ...rest } = endpoint;
    void _secret;
    return rest;
  };

  function createEndpoint(params: StripeParams): FakeResponse {
    const unknown = unknownParam(params, ["url", "enabled_events", "description", "metadata", "api_version", "connect", "expand"]);
    if (unknown) return unknown;
    for (const field of ["url", "enabled_events"] as const) {
      if (params[field] === undefined || params[field] === "") {
        return invalid(`Missing required param: ${field}.`, { code: "parameter_missing", param: field });
      }
    }
    const problem = urlError(params.url, livemode) ?? eventsError(params.enabled_events) ?? metadataError(params.metadata);
    if (problem) return problem;
    if (endpoints.size >= maxEndpoints) {
      return invalid(`You have reached the maximum of ${maxEndpoints} ${livemode ? "live" : "test"} webhook endpoints.`);
    }
    const endpoint: WebhookEndpointRecord = {
      id: `we_${randomToken(24)}`,
      object: "webhook_endpoint",
      api_version: typeof params.api_version === "string" ? params.api_version : null,
      application: null,
      created: Math.floor(Date.now() / 1000),
      description: typeof params.description === "string" && params.description !== "" ? params.description : null,
      enabled_events: params.enabled_events as string[],
      livemode,
      metadata: mergeMetadata({}, params.metadata),
      secret: `whsec_${randomToken(32)}`,
      status: "enabled",
      url: params.url as string,
    };
    endpoints.set(endpoint.id, endpoint);
    position.set(endpoint.id, position.size);
    return { status: 200, body: endpoint };
  }

  function updateEndpoint(id: string, params: StripeParams): FakeResponse {
    const unknown = unknownParam(params, ["url", "enabled_events", "description", "metadata", "disabled", "expand"]);
    if (unknown) return unknown;
    const endpoint = endpoints.get(id);
    if (!endpoint) return missing(id);
    const problem =
      (params.url !== undefined ? urlError(params.url, livemode) : null) ??
      (params.enabled_events !== undefined ? eventsError(params.enabled_events) : null) ??
      metadataError(params.metadata);
    if (problem) return problem;
    if (params.disabled !== undefined && params.disabled !== "true" && params.disabled !== "false") {
      return invalid(`Invalid boolean: ${String(params.disabled)}`, { param: "disabled" });
    }
    if (params.url !== undefined) endpoint.url = params.url as string;
    if (params.enabled_events !== undefined) endpoint.enabled_events = params.enabled_events as string[];
    if (params.description !== undefined) endpoint.description = params.description === "" ? null : (params.description as string);
    if (params.disabled !== undefined) endpoint.status = params.disabled === "true" ? "disabled" : "enabled";
    endpoint.metadata = mergeMetadata(endpoint.metadata, params.metadata);
    return { status: 200, body: publicView(endpoint) };
  }

  function listEndpoints(params: StripeParams): FakeResponse {
    const unknown = unknownParam(params, ["limit", "starting_after", "ending_before", "expand"]);
    if (unknown) return unknown;
    const limitText = params.limit ?? "10";
    const limit = typeof limitText === "string" && /^\d+$/.test(limitText) ? Number(limitText) : NaN;
    if (!Number.isInteger(limit)) return invalid(`Invalid integer: ${String(limitText)}`, { code: "parameter_invalid_integer", param: "limit" });
    if (limit < 1 || limit > 100) {
      return invalid(`This value must be ${limit < 1 ? "greater than or equal to 1" : "less than or equal to 100"} (it currently is '${limit}').`, {
        code: "parameter_invalid_integer",
        param: "limit",
      });
    }
    const { starting_after: after, ending_before: before } = params;
    if (after !== undefined && before !== undefined) {
      return invalid("You may only specify one of these parameters: ending_before, starting_after.");
    }
    for (const [param, cursor] of [["starting_after", after], ["ending_before", before]] as const) {
      if (cursor !== undefined && (typeof cursor !== "string" || !position.has(cursor))) {
        return stripeError(400, { type: "invalid_request_error", code: "resource_missing", param, message: `No such webhook endpoint: '${String(cursor)}'` });
      }
    }
    const newestFirst = [...endpoints.values()].sort((a, b) => position.get(b.id)! - position.get(a.id)!);
    let data: WebhookEndpointRecord[];
    let hasMore: boolean;
    if (typeof before === "string") {
      const newer = newestFirst.filter((e) => position.get(e.id)! > position.get(before)!);
      data = newer.slice(-limit);
      hasMore = newer.length > limit;
    } else {
      const older = typeof after === "string" ? newestFirst.filter((e) => position.get(e.id)! < position.get(after)!) : newestFirst;
      data = older.slice(0, limit);
      hasMore = older.length > limit;
    }
    return { status: 200, body: { object: "list", data: data.map(publicView), has_more: hasMore, url: LIST_URL } };
  }

  function deleteEndpoint(id: string): FakeResponse {
    if (!endpoints.delete(id)) return missing(id);
    return { status: 200, body: { id, object: "webhook_endpoint", deleted: true } };
  }

  /** Stripe's Idempotency-Key rules for POST: replay the saved answer, refuse a key reused for something else. */
  function idempotent(request: FakeRequest, params: StripeParams, handle: () => FakeResponse): FakeResponse {
    const requestId = `req_${randomToken(14)}`;
    const key = request.headers["idempotency-key"];
    if (request.method !== "POST" || key === undefined) return { ...handle(), headers: { "request-id": requestId } };
    if (key.length > 255) {
      return invalid(`Invalid idempotency key: keys can be at most 255 characters (this one is ${key.length}).`, { param: "Idempotency-Key" });
    }
    const scope = `${request.method} ${request.path}`;
    const seen = idempotency.lookup(key, scope, params);
    if (seen.kind === "replay") {
      const original = seen.response.headers?.["request-id"] ?? "";
      return { ...seen.response, headers: { ...seen.response.headers, "request-id": requestId, "original-request": original, "idempotent-replayed": "true" } };
    }
    if (seen.kind === "mismatch") {
      const message =
        seen.scope !== seen.requested
          ? `Keys for idempotent requests can only be used for the same endpoint they were first used for ('${seen.scope}'). Try using a key other than '${key}' if you meant to execute a different request.`
          : `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`;
      return stripeError(400, { type: "idempotency_error", message });
    }
    const answer = handle();
    const response = { ...answer, headers: { "request-id": requestId, "idempotency-key": key, "original-request": requestId } };
    // Stripe saves an answer once the endpoint has started executing; parameter errors (400) are not saved.
    if (answer.status !== 400) idempotency.remember(key, scope, params, response);
    return response;
  }

  const paramsOf = (request: FakeRequest) =>
    parseStripeParams(request.method === "GET" || request.method === "DELETE" ? request.query : new URLSearchParams(request.rawBody));

  const route = (method: string, path: string, act: (params: StripeParams, id: string) => FakeResponse): Route => ({
    method,
    path,
    handler: (request) => {
      const key = apiKeyOf(request.headers.authorization);
      if (key === null) {
        return invalidAuth(
          "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.",
        );
      }
      if (key !== options.secretKey) return invalidAuth(`Invalid API Key provided: ${maskKey(key)}`);
      const params = paramsOf(request);
      const answer = idempotent(request, params, () => act(params, request.params.id));
      return { ...answer, body: structuredClone(answer.body) };
    },
  });

  const server = await startFakeServer({
    name: "stripe",
    prefix: "/v1",
    routes: [
      route("POST", "/webhook_endpoints", (params) => createEndpoint(params)),
      route("GET", "/webhook_endpoints", (params) => listEndpoints(params)),
      route("GET", "/webhook_endpoints/:id", (_params, id) => {
        const endpoint = endpoints.get(id);
        return endpoint ? { status: 200, body: publicView(endpoint) } : missing(id);
      }),
      route("POST", "/webhook_endpoints/:id", (params, id) => updateEndpoint(id, params)),
      route("DELETE", "/webhook_endpoints/:id", (_params, id) => deleteEndpoint(id)),
    ],
    errorBody: (status, message) => ({
      error: {
        type: status >= 500 ? "api_error" : "invalid_request_error",
        ...(status === 429 ? { code: "rate_limit" } : {}),
        message,
      },
    }),
  });

  return Object.assign(server, {
    endpoints: () => [...endpoints.values()].map((e) => structuredClone(e)),
    deleteEndpointOutOfBand(id: string) {
      if (!endpoints.delete(id)) throw new Error(`stripe fake: no webhook endpoint ${id}`);
    },
  });
}

function apiKeyOf(authorization: string | undefined): string | null {
  if (!authorization) return null;
  if (/^bearer /i.test(authorization)) return authorization.slice(7).trim() || null;
  if (/^basic /i.test(authorization)) return Buffer.from(authorization.slice(6), "base64").toString("utf8").split(":")[0] || null;
  return null;
}

function invalidAuth(message: string): FakeResponse {
  return { status: 401, body: { error: { type: "invalid_request_error", message } } };
}
