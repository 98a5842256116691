// Health probes of tenant URLs (a site, a backend's /version), shared by the live Convex and
// Cloudflare adapters and the sandbox's. A probe never throws: whatever happened becomes an
// outcome with a short reason. These are the tenants' own URLs, not a provider's API, so no
// request budget is spent on them.
import { log } from "../lib/log";
import type { ProviderName } from "../lib/validators";
import type { OperationName } from "./operations";
import type { ProbeOutcome, ProbeTarget, ProviderEnv } from "./types";

export type ProbeSpec = {
  provider: ProviderName;
  operation: OperationName;
  /** The URL fetched for a target. */
  urlOf: (target: ProbeTarget) => string;
  /** Whether an answer with this status passes. */
  passes: (status: number) => boolean;
};

/** Probes every target at once; outcomes in target order. */
export function probeUrls(env: ProviderEnv, spec: ProbeSpec, targets: ProbeTarget[]): Promise<ProbeOutcome[]> {
  return Promise.all(targets.map((target) => probeUrl(env, spec, target)));
}

async function probeUrl(env: ProviderEnv, spec: ProbeSpec, target: ProbeTarget): Promise<ProbeOutcome> {
  const timeoutMs = env.config.HEALTH_PROBE_TIMEOUT_MS;
  const started = Date.now();
  let outcome: ProbeOutcome;
  try {
    const response = await fetch(spec.urlOf(target), {
      method: "GET",
      redirect: "follow",
      signal: AbortSignal.timeout(timeoutMs),
    });
    // Only the status matters; dropping the body frees the connection without waiting for it.
    await response.body?.cancel().catch(() => undefined);
    const ms = Date.now() - started;
    const ok = spec.passes(response.status);
    outcome = { ok, status: response.status, ms, detail: answeredDetail(ok, response.status, response.statusText, ms) };
  } catch (error) {
    outcome = { ok: false, ms: Date.now() - started, detail: failureReason(error, timeoutMs) };
  }
  if (!outcome.ok) logProbeFailure(env, spec, target, outcome);
  return outcome;
}

/** "200 in 35 ms" for a pass; "503 Service Unavailable" for a failing answer. */
export function answeredDetail(ok: boolean, status: number, statusText: string, ms: number): string {
  if (ok) return `${status} in ${ms} ms`;
  return statusText ? `${status} ${statusText}` : String(status);
}

/**
 * Why no answer came, from fetch's rejection: the abort of our timeout, or the network error's
 * code (undici puts it on `cause`). Error messages are not used: they may carry the host.
 */
function failureReason(error: unknown, timeoutMs: number): string {
  const name = (error as { name?: unknown })?.name;
  if (name === "TimeoutError" || name === "AbortError") return `timed out after ${timeoutMs} ms`;
  const code = networkCode(error);
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ECONNRESET":
    case "UND_ERR_SOCKET":
      return "connection reset";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "DNS lookup failed";
    case undefined:
      return "network error";
    default:
      return `network error (${code})`;
  }
}

function networkCode(error: unknown): string | undefined {
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string") return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** One line per failed probe; never the URL (a custom domain's query string could carry a token). */
export function logProbeFailure(
  env: ProviderEnv,
  spec: Pick<ProbeSpec, "provider" | "operation">,
  target: Pick<ProbeTarget, "instanceId" | "correlationId">,
  outcome: ProbeOutcome,
): void {
  const { instanceId } = target;
  log("warn", "health.probe_failed", {
    correlationId: target.correlationId ?? env.correlationId,
    provider: spec.provider,
    operation: spec.operation,
    instanceId,
    outcome: outcome.status !== undefined ? String(outcome.status) : outcome.detail,
    durationMs: outcome.ms,
  });
}
