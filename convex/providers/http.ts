// What every live adapter shares: a request budget per provider (waiting, never failing),
// a timeout on every request, and turning any failure into a classified ProviderError.
import { numericSetting, type LiveProviderName } from "../lib/config";
import { PROVIDERS } from "../registry";
import { log } from "../lib/log";
import { rateLimiter, SECOND } from "../model/rateLimiter";
import { kindForStatus } from "./classify";
import { ProviderError, type ProviderEnv } from "./types";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Takes one request from the provider's budget, waiting for it when the budget is spent,
 * so a burst of checkouts never exceeds the provider's limit and no step fails for it.
 */
export async function awaitBudget(env: ProviderEnv, provider: LiveProviderName): Promise<void> {
  const rps = numericSetting(env.config, PROVIDERS[provider].rate.variable);
  // A token bucket refilled at the budget's rate with room for one request: requests are
  // paced evenly, so no window of the provider's ever sees more than the budget.
  const { retryAfter } = await rateLimiter.limit(env.ctx, `provider:${provider}`, {
    config: { kind: "token bucket", rate: 1, period: SECOND / rps, capacity: 1 },
    reserve: true,
  });
  if (retryAfter) await sleep(retryAfter);
}

/** Milliseconds from a Retry-After header (seconds or an HTTP date), if any. */
export function retryAfterMs(value: string | null | undefined): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** Milliseconds until an `x-ratelimit-reset` (unix seconds) header, if any. */
function resetAfterMs(headers: Headers): number | undefined {
  const reset = Number(headers.get("x-ratelimit-reset"));
  return Number.isFinite(reset) && reset > 0 ? Math.max(0, reset * 1000 - Date.now()) : undefined;
}

/** A ProviderError for an HTTP status, with the provider's own message and code. */
export function errorForStatus(
  provider: LiveProviderName,
  status: number,
  message: string,
  options: { retryAfter?: string | null; code?: string } = {},
): ProviderError {
  const kind = kindForStatus(status);
  return new ProviderError(
    provider,
    kind,
    `${status}: ${message}`,
    kind === "rate_limited" ? (retryAfterMs(options.retryAfter) ?? 1_000) : undefined,
    options.code,
    status,
  );
}

/** A network failure or timeout: the provider may or may not have acted, so retrying must be safe. */
export function networkError(provider: LiveProviderName, error: unknown): ProviderError {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new ProviderError(provider, "transient", `network error: ${message}`);
}

type JsonRequest = {
  method: "GET" | "POST" | "PATCH" | "DELETE" | "PUT";
  url: string;
  headers: Record<string, string>;
  body?: unknown;
  operation: string;
};

/**
 * One JSON request to a provider's REST API (used for APIs Brain calls without an SDK):
 * budget, timeout, one structured log line, classified errors.
 */
export async function requestJson<T>(
  env: ProviderEnv,
  provider: LiveProviderName,
  request: JsonRequest,
  readError: (status: number, body: unknown, headers: Headers) => { message: string; code?: string; rateLimited?: boolean },
): Promise<{ status: number; body: T }> {
  await awaitBudget(env, provider);
  const started = Date.now();
  let response: Response;
  try {
    response = await fetch(request.url, {
      method: request.method,
      headers: {
        accept: "application/json",
        ...(request.body !== undefined ? { "content-type": "application/json" } : {}),
        ...request.headers,
      },
      body: request.body === undefined ? undefined : JSON.stringify(request.body),
      signal: AbortSignal.timeout(env.config.PROVIDER_TIMEOUT_MS),
    });
  } catch (error) {
    logCall(env, provider, request.operation, "network_error", started, request);
    throw networkError(provider, error);
  }
  const text = await response.text().catch(() => "");
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  logCall(env, provider, request.operation, String(response.status), started, request);
  if (!response.ok) {
    const { message, code, rateLimited } = readError(response.status, body, response.headers);
    if (rateLimited) {
      // A provider that signals its limit with another status (GitHub: 403 + x-ratelimit-*).
      const retryAfter = retryAfterMs(response.headers.get("retry-after")) ?? resetAfterMs(response.headers);
      throw new ProviderError(provider, "rate_limited", `${response.status}: ${message}`, retryAfter ?? 60_000, code, response.status);
    }
    throw errorForStatus(provider, response.status, message, { retryAfter: response.headers.get("retry-after"), code });
  }
  return { status: response.status, body: body as T };
}

/** The path of a request URL, without its query (which can carry an email address). */
function pathOf(url: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    return "?";
  }
}

type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/**
 * A fetch for one SDK operation that writes each HTTP request's `provider.call` line (method,
 * path, status, duration), since only the SDK knows the request it makes.
 */
function tracedFetch(env: ProviderEnv, provider: string, operation: string, onRequest: () => void): FetchLike {
  return async (input, init) => {
    onRequest();
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const method = init?.method ?? (typeof input === "object" && "method" in input ? input.method : "GET");
    const started = Date.now();
    try {
      const response = await fetch(input, init);
      logCall(env, provider, operation, String(response.status), started, { method, url });
      return response;
    } catch (error) {
      logCall(env, provider, operation, "network_error", started, { method, url });
      throw error;
    }
  };
}

/**
 * One SDK call: budget, one structured log line per HTTP request (the SDK is handed a traced
 * fetch), and the SDK's own error turned into a classified ProviderError by the adapter's
 * `classify`. An SDK that cannot take a fetch names its one request in `request`, and the line
 * is written here.
 */
export async function sdkCall<T>(
  env: ProviderEnv,
  provider: LiveProviderName,
  operation: string,
  run: (fetch: FetchLike) => Promise<T>,
  classify: (error: unknown) => ProviderError,
  request?: { method: string; path: string },
): Promise<T> {
  await awaitBudget(env, provider);
  const started = Date.now();
  let traced = false;
  const fetch = tracedFetch(env, provider, operation, () => (traced = true));
  const untraced = (outcome: string) => {
    if (!traced) logCall(env, provider, operation, outcome, started, request && { method: request.method, url: `http://x${request.path}` });
  };
  try {
    const result = await run(fetch);
    untraced("ok");
    return result;
  } catch (error) {
    const classified = error instanceof ProviderError ? error : classify(error);
    untraced(classified.status ? String(classified.status) : classified.kind);
    throw classified;
  }
}

/**
 * The `provider.call` line: provider, operation, the HTTP method and path when known (never the
 * query or host), the outcome (an HTTP status, `network_error` or an error class), duration and
 * the attempt (the step's, the email's or the delivery's; 1 elsewhere).
 */
export function logCall(
  env: ProviderEnv,
  provider: string,
  operation: string,
  outcome: string,
  started: number,
  request?: { method: string; url: string },
) {
  log(outcome === "ok" || /^2\d\d$/.test(outcome) ? "info" : "warn", "provider.call", {
    correlationId: env.correlationId,
    provider,
    operation,
    mode: "live",
    ...(request ? { method: request.method.toUpperCase(), path: pathOf(request.url) } : {}),
    outcome,
    ...(/^\d{3}$/.test(outcome) ? { status: Number(outcome) } : {}),
    durationMs: Date.now() - started,
    attempt: env.attempt ?? 1,
  });
}
