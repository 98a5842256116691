// Reconciliation's comparison as plain functions: Stripe's subscriptions and recent paid checkouts
// against the instances they belong to, classified into differences, and the brake on mass
// changes. They read and write nothing (reconciliation.ts lists, looks up and applies). The rules
// are lifecycleRules' own, so reconciliation and the webhooks agree on what an instance should be.
// Never classify an instance Stripe did not list: an absent subscription (a wrong key, the wrong
// account, a partial listing) is no evidence of anything.
import type { Config } from "../lib/config";
import type { CheckoutSummary, InstanceStatus, SubscriptionStatus, SubscriptionSummary } from "../lib/validators";
import type { CheckoutSnapshot, SubscriptionSnapshot } from "../providers/types";
import { hasEnded, isLive, keepsAccess, shouldBeSuspended } from "./lifecycleRules";

export type DifferenceType = "paid_not_provisioned" | "cancelled_still_running" | "status_mismatch" | "unknown_subscription";
export type ReconcileAction = "provision" | "deprovision" | "suspend" | "resume" | "report";

/** One difference as the route answers it and reconciliationRuns stores it. */
export type Difference = {
  type: DifferenceType;
  subscriptionId?: string;
  checkoutSessionId?: string;
  instanceId?: string;
  action: ReconcileAction;
};

/** A difference applied (not on a dry run, nor when braked), with what applying it said. */
export type AppliedDifference = Difference & { result: string };

/** What applying a difference takes: the subscription as listed, or the checkout to provision. */
export type Remedy =
  | { kind: "snapshot"; subscription: SubscriptionSummary }
  | { kind: "provision"; checkout: CheckoutSummary; createdAt: number }
  | { kind: "none" };

export type Finding = { difference: Difference; remedy: Remedy };

/** What reconciliation needs to know of the instance a subscription belongs to. */
export type InstanceFacts = {
  instanceId: string;
  status: InstanceStatus;
  stripeSubscriptionId?: string;
  deprovisionAt?: number;
  pastDueSince?: number;
  /** The subscription state the instance applied last (lifecycle.ts). */
  applied?: { subscriptionId: string; status: SubscriptionStatus };
  /** A job of the instance is queued or running (its end reviews the instance again). */
  busy: boolean;
};

export type SubscriptionFinding = { subscription: SubscriptionSnapshot; instance: InstanceFacts | null };
/** A listed session and the instance found for it (by session id, else by its subscription). */
export type SessionFinding = { session: CheckoutSnapshot; instanceId: string | null };

/** Checkout payment statuses that mean the customer paid (or owes nothing). */
export const PAID_STATUSES: ReadonlySet<string> = new Set(["paid", "no_payment_required"]);

/** Stripe's subscription as a vSubscriptionSummary (the snapshot's `created` dropped). */
export function summaryOf(snapshot: SubscriptionSnapshot): SubscriptionSummary {
  const { created: _created, ...summary } = snapshot;
  return summary;
}

/** The CheckoutSummary fields of a listed session (status, mode and created dropped). */
export function checkoutOf(session: CheckoutSnapshot): CheckoutSummary {
  const { status: _status, mode: _mode, created: _created, ...checkout } = session;
  return checkout;
}

/**
 * Whether the instance is this subscription's to act on: paid by it, or by no subscription yet
 * (a checkout that carried none). An instance paid by another subscription (the customer's newer
 * one, or a resubscription within the grace that a missed checkout has not applied yet) is that
 * one's: the missed checkout is found among the sessions instead.
 */
const belongsTo = (instance: InstanceFacts, subscriptionId: string) =>
  instance.stripeSubscriptionId === undefined || instance.stripeSubscriptionId === subscriptionId;

/** Whether Stripe's state of the subscription says the instance should be suspended now. */
function saysSuspended(subscription: SubscriptionSnapshot, instance: InstanceFacts, config: Config, now: number): boolean {
  // A past-due clock runs from when the instance applied past_due; one Brain never applied has not started.
  const sameApplied = instance.applied?.subscriptionId === subscription.subscriptionId && instance.applied.status === "past_due";
  return shouldBeSuspended(
    {
      subscription: { subscriptionId: subscription.subscriptionId, status: subscription.status, createdAt: now, source: "reconcile" },
      pastDueSince: sameApplied ? instance.pastDueSince : undefined,
      deprovisionAt: undefined,
    },
    config,
    now,
  );
}

/**
 * The change is already under way: the instance applied this very state and a job of it is in
 * progress (a resume leaves the instance `suspended` until it ends). Applying again would only
 * re-record the same state.
 */
const underWay = (subscription: SubscriptionSnapshot, instance: InstanceFacts) =>
  instance.busy && instance.applied?.subscriptionId === subscription.subscriptionId && instance.applied.status === subscription.status;

function classifySubscription(
  { subscription, instance }: SubscriptionFinding,
  explained: ReadonlySet<string>,
  config: Config,
  now: number,
): Finding | null {
  const subscriptionId = subscription.subscriptionId;
  const snapshot: Remedy = { kind: "snapshot", subscription: summaryOf(subscription) };
  const own = instance && belongsTo(instance, subscriptionId) ? instance : null;
  if (!own) {
    // An ended subscription nobody holds needs nothing; a session of the window explains a new one.
    if (hasEnded(subscription.status) || explained.has(subscriptionId)) return null;
    return { difference: { type: "unknown_subscription", subscriptionId, action: "report" }, remedy: { kind: "none" } };
  }
  const base = { subscriptionId, instanceId: own.instanceId };
  if (own.status === "deleted") return null;
  if (hasEnded(subscription.status)) {
    // Once deprovisionAt is set the grace clock runs (lifecycle.ts): nothing left to reconcile.
    if (own.deprovisionAt !== undefined) return null;
    return { difference: { type: "cancelled_still_running", ...base, action: "deprovision" }, remedy: snapshot };
  }
  if (underWay(subscription, own)) return null;
  const suspend = saysSuspended(subscription, own, config, now);
  if (suspend && isLive(own.status)) {
    return { difference: { type: "status_mismatch", ...base, action: "suspend" }, remedy: snapshot };
  }
  if (!suspend && keepsAccess(subscription.status) && own.status === "suspended" && own.deprovisionAt === undefined) {
    return { difference: { type: "status_mismatch", ...base, action: "resume" }, remedy: snapshot };
  }
  return null;
}

/**
 * Every difference between Stripe and the instances, actionable ones first (each group in the
 * order Stripe listed it), then the reports:
 * - `paid_not_provisioned`: a complete, paid session of the window with no instance (neither by
 *   session id nor by its subscription), unless Stripe lists its subscription as ended;
 * - `cancelled_still_running`: an ended subscription whose instance is not deleted and has no
 *   deprovision clock;
 * - `status_mismatch`: Stripe's state says suspended and the instance is live, or says active and
 *   the instance is suspended with no deprovision clock;
 * - `unknown_subscription`: a subscription (not ended) no instance belongs to and no session of
 *   the window explains (reported only).
 */
export function classify(input: { subscriptions: SubscriptionFinding[]; sessions: SessionFinding[]; config: Config; now: number }): Finding[] {
  const { subscriptions, sessions, config, now } = input;
  const ended = new Set(subscriptions.filter((s) => hasEnded(s.subscription.status)).map((s) => s.subscription.subscriptionId));
  const explained = new Set(sessions.flatMap((s) => (s.session.subscriptionId ? [s.session.subscriptionId] : [])));

  const findings: Finding[] = [];
  const seenSessions = new Set<string>();
  for (const { session, instanceId } of sessions) {
    if (seenSessions.has(session.sessionId)) continue; // a page boundary moved under the listing
    seenSessions.add(session.sessionId);
    if (instanceId !== null || session.status !== "complete" || session.mode === "setup") continue;
    if (!PAID_STATUSES.has(session.paymentStatus)) continue;
    if (session.subscriptionId && ended.has(session.subscriptionId)) continue;
    findings.push({
      difference: {
        type: "paid_not_provisioned",
        ...(session.subscriptionId ? { subscriptionId: session.subscriptionId } : {}),
        checkoutSessionId: session.sessionId,
        action: "provision",
      },
      remedy: { kind: "provision", checkout: checkoutOf(session), createdAt: session.created },
    });
  }
  const seenSubscriptions = new Set<string>();
  for (const finding of subscriptions) {
    if (seenSubscriptions.has(finding.subscription.subscriptionId)) continue;
    seenSubscriptions.add(finding.subscription.subscriptionId);
    const found = classifySubscription(finding, explained, config, now);
    if (found) findings.push(found);
  }
  const reports = findings.filter((f) => f.difference.action === "report");
  return [...findings.filter((f) => f.difference.action !== "report"), ...reports];
}

/** One run may suspend or deprovision 1/20 (5%) of the fleet, or RECONCILE_MAX_CHANGES if larger. */
export const BRAKE_FLEET_DIVISOR = 20;

/** Differences that take a customer's access away. */
export const isDestructive = (difference: Difference) => difference.action === "suspend" || difference.action === "deprovision";

/** How many instances the fleet must hold for `destructive` changes to pass under its 5% share. */
export const fleetNeededFor = (destructive: number) => destructive * BRAKE_FLEET_DIVISOR;

/**
 * The safety brake: a run that would suspend or deprovision more than RECONCILE_MAX_CHANGES
 * instances or 5% of the fleet (non-deleted instances), whichever is larger, applies nothing.
 * `fleet` may be a lower bound: counting can stop at fleetNeededFor(destructive).
 */
export function brake(differences: Difference[], fleet: number, maxChanges: number): { braked: boolean; destructive: number; limit: number } {
  const destructive = differences.filter(isDestructive).length;
  const limit = Math.max(maxChanges, Math.floor(fleet / BRAKE_FLEET_DIVISOR));
  return { braked: destructive > limit, destructive, limit };
}
