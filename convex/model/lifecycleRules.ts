// The lifecycle's rules as plain functions: what an instance should be given the subscription
// state it applied, and whether an event is older than that state. They read and write nothing;
// lifecycle.ts applies them. Tests drive them table by table (tests/lifecycle.test.ts).
import type { Doc } from "../_generated/dataModel";
import type { Config } from "../lib/config";
import type { AppliedSubscription, InstanceStatus, JobKind, SubscriptionStatus, SubscriptionSummary } from "../lib/validators";

type Instance = Doc<"instances">;

/** Statuses of an instance that is up and serving (its health, healthStatus, may say degraded or down). */
export const LIVE_STATUSES: readonly InstanceStatus[] = ["active"];
export const isLive = (status: InstanceStatus) => LIVE_STATUSES.includes(status);

/** The subscription has ended for good: its instance is deprovisioned after the grace. */
export const hasEnded = (status: SubscriptionStatus) => status === "canceled" || status === "incomplete_expired";

/** Statuses that keep an instance serving (past_due does, until SUSPEND_AFTER_PAST_DUE_MS). */
export const keepsAccess = (status: SubscriptionStatus) =>
  status === "active" || status === "trialing" || status === "past_due" || status === "incomplete";

/** Whether the instance should be suspended now, given what it applied. */
export function shouldBeSuspended(instance: Pick<Instance, "subscription" | "pastDueSince" | "deprovisionAt">, config: Config, now: number): boolean {
  if (instance.deprovisionAt !== undefined) return true;
  const status = instance.subscription?.status;
  if (status === undefined) return false;
  if (status === "past_due") return instance.pastDueSince !== undefined && now - instance.pastDueSince >= config.SUSPEND_AFTER_PAST_DUE_MS;
  return !keepsAccess(status);
}

/**
 * The lifecycle job the instance needs next, or null when it is where it should be. The caller
 * checks that no job of the instance is in progress. Order matters: deletion first, then access
 * (suspend / resume), then the plan.
 */
export function nextLifecycleJob(instance: Instance, config: Config, now: number): Exclude<JobKind, "provision"> | null {
  if (instance.status === "deleted") return null;
  if (instance.deprovisionAt !== undefined && instance.deprovisionAt <= now) return "deprovision";
  // A deprovision under way (an operator's, or one that failed and waits for its retry) finishes.
  if (instance.status === "deprovisioning") return "deprovision";
  const suspend = shouldBeSuspended(instance, config, now);
  if (suspend && isLive(instance.status)) return "suspend";
  if (!suspend && instance.status === "suspended") return "resume";
  if (instance.pendingPlan && instance.pendingPlan.plan !== instance.plan && isLive(instance.status)) return "changePlan";
  return null;
}

/**
 * How an event's subscription state compares with what the instance applied:
 * - `apply`: newer (or the first), apply it;
 * - `stale`: older than what was applied, change nothing (`updated` after `deleted` never resurrects);
 * - `same`: the same second and the same state, nothing to do;
 * - `tie`: the same second but another state: Stripe's own snapshot decides.
 * Stripe's `created` has second resolution, so two events of one second cannot be ordered.
 * A snapshot (Brain asked Stripe) is the truth when it was taken: it never ties.
 */
export function compareWithApplied(
  applied: AppliedSubscription | undefined,
  incoming: { subscription: SubscriptionSummary; createdAt: number; snapshot: boolean },
): "apply" | "stale" | "same" | "tie" {
  if (!applied || applied.subscriptionId !== incoming.subscription.subscriptionId) return "apply";
  const appliedSecond = Math.floor(applied.createdAt / 1000);
  const incomingSecond = Math.floor(incoming.createdAt / 1000);
  if (incomingSecond < appliedSecond) return "stale";
  const sameState = applied.status === incoming.subscription.status && (incoming.subscription.priceId ?? applied.priceId) === applied.priceId;
  if (incomingSecond > appliedSecond) return "apply";
  if (incoming.snapshot) return sameState ? "same" : "apply";
  return sameState ? "same" : "tie";
}
