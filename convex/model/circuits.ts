// Circuit breakers, one per provider. Repeated transient failures open a provider's circuit;
// while open its steps wait for the cool-down instead of burning retries. After the cool-down
// (half-open) exactly one attempt goes out as the probe and the others keep waiting for its
// result: success closes the circuit, failure opens it again. The rules are pure functions
// (decide.ts uses them); the rows are read and written here, and every write is audited
// (circuit.opened, circuit.closed, …) with the job and correlation id that caused it.
import type { Id } from "../_generated/dataModel";
import type { MutationCtx, QueryCtx } from "../_generated/server";
import type { Config } from "../lib/config";
import type { ProviderName, StepName } from "../lib/validators";
import { CIRCUIT_PROVIDERS } from "../registry";
import { appendAudit } from "./audit";

export { CIRCUIT_PROVIDERS };
export type CircuitState = "closed" | "open" | "half_open";

/** The attempt that probes a half-open circuit; `until` is when it counts as lost. */
export type CircuitProbe = { jobId: string; step: StepName; attempt: number; until: number };
export type CircuitRow = { failures: number; openedAt?: number; probe?: CircuitProbe };
export type CircuitSettings = { threshold: number; cooldownMs: number };

export const circuitSettings = (config: Config): CircuitSettings => ({
  threshold: config.CIRCUIT_FAILURE_THRESHOLD,
  cooldownMs: config.CIRCUIT_COOLDOWN_MS,
});

export function stateOf(row: CircuitRow | null | undefined, cooldownMs: number, now: number): CircuitState {
  if (!row || row.openedAt === undefined) return "closed";
  return now - row.openedAt >= cooldownMs ? "half_open" : "open";
}

/** How often a step waiting behind another attempt's probe looks again. */
export const probePollMs = (cooldownMs: number) => Math.max(1_000, Math.min(cooldownMs, 5_000));

/** Whether a step of this provider may go now (and whether it is the probe), or how long it waits. */
export type Gate = { kind: "go"; probe: boolean } | { kind: "wait"; delayMs: number };

export function gate(row: CircuitRow | null | undefined, settings: CircuitSettings, now: number): Gate {
  const state = stateOf(row, settings.cooldownMs, now);
  if (state === "closed") return { kind: "go", probe: false };
  if (state === "open") return { kind: "wait", delayMs: row!.openedAt! + settings.cooldownMs - now };
  // Half-open: one probe at a time. A probe past its deadline is lost and another may go.
  if (row!.probe && row!.probe.until > now) return { kind: "wait", delayMs: probePollMs(settings.cooldownMs) };
  return { kind: "go", probe: true };
}

export const isProbe = (row: CircuitRow | null | undefined, jobId: string, step: StepName, attempt: number) =>
  !!row?.probe && row.probe.jobId === jobId && row.probe.step === step && row.probe.attempt === attempt;

/**
 * The row after one attempt's result. `tripped`: the circuit is open after it, so the failure
 * does not count against the step's budget. `changed`: the row must be written (a success on
 * a closed, clean circuit writes nothing: successes are the hot path).
 */
export function afterResult(
  row: CircuitRow | null | undefined,
  failed: boolean,
  settings: CircuitSettings,
  now: number,
): { row: CircuitRow; tripped: boolean; changed: boolean } {
  const current: CircuitRow = row ?? { failures: 0 };
  if (!failed) {
    const changed = current.failures > 0 || current.openedAt !== undefined || current.probe !== undefined;
    return { row: { failures: 0 }, tripped: false, changed };
  }
  const wasOpen = current.openedAt !== undefined;
  const failures = current.failures + 1;
  // A failure while half-open (the probe's, or any late one) re-opens at once; a closed
  // circuit opens at the threshold; an open one keeps its cool-down.
  const open = wasOpen || failures >= settings.threshold;
  const stillCooling = wasOpen && stateOf(current, settings.cooldownMs, now) === "open";
  const openedAt = open ? (stillCooling ? current.openedAt : now) : undefined;
  return {
    row: { failures, ...(openedAt !== undefined ? { openedAt } : {}) },
    tripped: open,
    changed: true,
  };
}

async function load(ctx: QueryCtx, provider: ProviderName) {
  return ctx.db
    .query("circuits")
    .withIndex("by_provider", (q) => q.eq("provider", provider))
    .unique();
}

/** The rows of `providers` (null where none was ever written). */
export async function loadCircuits(ctx: QueryCtx, providers: Iterable<ProviderName>) {
  const rows: Partial<Record<ProviderName, CircuitRow | null>> = {};
  for (const provider of new Set(providers)) {
    if (!CIRCUIT_PROVIDERS.includes(provider)) continue;
    const row = await load(ctx, provider);
    rows[provider] = row ? { failures: row.failures, openedAt: row.openedAt, probe: row.probe } : null;
  }
  return rows;
}

/** Who changed a circuit: the job whose step outcome did, and its flow. */
export type CircuitCause = { actor: string; correlationId: string; jobId?: Id<"provisioningJobs">; instanceId?: Id<"instances"> };

/** What a write changes about a circuit, as its audit action: opened, closed, re-opened, probing, failures counted or reset. */
export function circuitChange(before: CircuitRow | null, after: CircuitRow): string {
  const wasOpen = before?.openedAt !== undefined;
  const isOpen = after.openedAt !== undefined;
  if (!wasOpen && isOpen) return "circuit.opened";
  if (wasOpen && !isOpen) return "circuit.closed";
  if (wasOpen && isOpen && before!.openedAt !== after.openedAt) return "circuit.reopened";
  if (after.probe !== undefined && (before?.probe === undefined || before.probe.until !== after.probe.until)) return "circuit.probe_started";
  if (after.failures === 0) return "circuit.failures_reset";
  return "circuit.failures_counted";
}

/** Writes a provider's circuit row, and appends the change to the audit trail (an insert: no extra read). */
export async function saveCircuit(ctx: MutationCtx, provider: ProviderName, row: CircuitRow, now: number, cause: CircuitCause) {
  const existing = await load(ctx, provider);
  const fields = { failures: row.failures, openedAt: row.openedAt, probe: row.probe, updatedAt: now };
  if (existing) await ctx.db.patch("circuits", existing._id, fields);
  else await ctx.db.insert("circuits", { provider, ...fields });
  const action = circuitChange(existing, row);
  await appendAudit(ctx, { ...cause, action, detail: `${provider}: ${row.failures} consecutive failures` });
}

export async function listCircuits(ctx: QueryCtx, config: Config, now: number) {
  const rows = await loadCircuits(ctx, CIRCUIT_PROVIDERS);
  return CIRCUIT_PROVIDERS.map((provider) => {
    const row = rows[provider] ?? null;
    return {
      provider,
      state: stateOf(row, config.CIRCUIT_COOLDOWN_MS, now),
      failures: row?.failures ?? 0,
      ...(row?.openedAt !== undefined ? { openedAt: row.openedAt } : {}),
    };
  });
}
