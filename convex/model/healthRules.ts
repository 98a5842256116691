// The health engine's pure rules: what the latest results say, hysteresis toward a confirmed
// status, and when each batch and member is next due. No I/O; health.ts applies the verdicts.
import type { CheckResult, HealthCheckName, HealthMember, HealthStatus, InstanceHealthStatus } from "../lib/validators";

export type Checks = HealthMember["checks"];
export type Thresholds = { failure: number; success: number };

/** Checks that mean the customer cannot reach the tenant when they fail. */
const REACHABILITY: readonly HealthCheckName[] = ["site", "backend"];
export const DEEP_CHECKS = ["organization", "pages"] as const;
export type DeepCheckName = (typeof DEEP_CHECKS)[number];

/** The failing checks, in a stable order. */
export function failingChecks(checks: Checks): HealthCheckName[] {
  return (Object.keys(checks) as HealthCheckName[]).filter((name) => checks[name] && !checks[name]!.ok).sort();
}

/** What the latest results point to: active (all pass), down (site or backend fails), else degraded. */
export function candidateOf(checks: Checks): InstanceHealthStatus {
  const failing = failingChecks(checks);
  if (failing.length === 0) return "active";
  return failing.some((name) => REACHABILITY.includes(name)) ? "down" : "degraded";
}

/** A probe-level verdict in GET /instance-health's words (healthy rather than active). */
export const probeVerdict = (status: InstanceHealthStatus): HealthStatus => (status === "active" ? "healthy" : status);

const direction = (status: InstanceHealthStatus) => (status === "active" ? "up" : "unhealthy");

export type Verdict = {
  member: HealthMember;
  /** The confirmed status changed (from undefined: the first check). */
  transition?: { from: InstanceHealthStatus | undefined; to: InstanceHealthStatus };
  /** The result differs from the previous one: worth a history row. */
  changed: boolean;
  /** A change is pending confirmation: re-check at the confirmation interval. */
  needsConfirmation: boolean;
  failing: HealthCheckName[];
};

/**
 * Folds one check's results into a member. Hysteresis: `failure` consecutive failing checks move
 * an active member to degraded or down, `success` consecutive passing checks bring it back; a
 * result in the other direction restarts the count, so a flapping target never changes status.
 * A member never checked before becomes active on its first pass (provisioning validated it).
 */
export function applyResults(
  member: HealthMember,
  results: Partial<Record<HealthCheckName, CheckResult>>,
  at: number,
  thresholds: Thresholds,
): Verdict {
  const previousFailing = failingChecks(member.checks);
  const checks: Checks = { ...member.checks, ...results };
  const failing = failingChecks(checks);
  const candidate = candidateOf(checks);
  const confirmed = member.status;
  const baseline = confirmed ?? "active";
  const failingSince = failing.length === 0 ? undefined : (member.failingSince ?? at);

  // A deep check the sweep suspects stays suspect until a run has actually probed it.
  const stillSuspect = member.deepSuspect?.filter((name) => results[name] === undefined);
  const deepSuspect = stillSuspect && stillSuspect.length > 0 ? stillSuspect : undefined;
  let next: HealthMember = { ...member, checks, checkedAt: at, failingSince, deepSuspect };
  let transition: Verdict["transition"];

  if (candidate === baseline) {
    next = { ...next, candidate: undefined, streak: 0 };
    if (confirmed === undefined) transition = { from: undefined, to: "active" };
  } else {
    const continues = member.candidate !== undefined && direction(member.candidate) === direction(candidate);
    const streak = continues ? member.streak + 1 : 1;
    const threshold = candidate === "active" ? thresholds.success : thresholds.failure;
    if (streak >= threshold) {
      transition = { from: confirmed, to: candidate };
      next = { ...next, candidate: undefined, streak: 0 };
    } else {
      next = { ...next, candidate, streak };
    }
  }

  if (transition) {
    next.status = transition.to;
    if (transition.to === "active") next.unhealthySince = undefined;
    else if (transition.from === undefined || transition.from === "active") next.unhealthySince = failingSince ?? at;
  }
  return {
    member: next,
    ...(transition ? { transition } : {}),
    changed: transition !== undefined || failing.join() !== previousFailing.join(),
    needsConfirmation: next.candidate !== undefined,
    failing,
  };
}

/** The deep checks to probe directly this time: the sweep's suspects, and those failing now. */
export function deepChecksToProbe(member: HealthMember): DeepCheckName[] {
  return DEEP_CHECKS.filter((name) => member.deepSuspect?.includes(name) || member.checks[name]?.ok === false);
}

const GOLDEN = 0.6180339887498949;

/** Batch n's place in the interval (a fraction): evenly spread for any number of batches. */
export const slotOf = (batchNumber: number) => (batchNumber * GOLDEN) % 1;

/** The first start of the batch's round strictly after `now`. */
export function nextRoundAt(slot: number, intervalMs: number, now: number): number {
  const offset = Math.floor(slot * intervalMs);
  return offset + (Math.floor((now - offset) / intervalMs) + 1) * intervalMs;
}
