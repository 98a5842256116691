// The daily reconciliation of Stripe with the instances (crons.ts, POST /admin/reconcile): lists
// every subscription and the last 30 days' completed checkouts through the Stripe adapter (paced
// by its request budget), looks their instances up in batched queries, classifies the differences
// (model/reconcile.ts) and, unless a dry run or braked, applies them through the lifecycle's own
// paths. It never acts on an instance Stripe did not list, and never applies a listing it could
// not finish: a wrong key or account must not tear customers down.
import { v } from "convex/values";
import { internal } from "./_generated/api";
import type { Id } from "./_generated/dataModel";
import { internalAction, internalMutation, internalQuery, type ActionCtx } from "./_generated/server";
import { loadConfig, providerMode, requireLiveCredentials, type Config } from "./lib/config";
import { fail, isBrainError } from "./lib/errors";
import { log, cronBatch } from "./lib/log";
import { vCheckoutSummary, vInstanceStatus, vStripeEventOutcome, vSubscriptionStatus, vSubscriptionSummary, type InstanceStatus } from "./lib/validators";
import { appendAudit } from "./model/audit";
import { provisionCheckout } from "./model/checkout";
import { instanceForSubscription, latestJob } from "./model/lifecycle";
import {
  brake,
  classify,
  fleetNeededFor,
  type AppliedDifference,
  type Difference,
  type Finding,
  type InstanceFacts,
  type SessionFinding,
  type SubscriptionFinding,
} from "./model/reconcile";
import { providersFor } from "./providers";
import { outcomeForError } from "./providers/classify";
import type { CheckoutSnapshot, StripePage, SubscriptionSnapshot } from "./providers/types";
import schema from "./schema";

/** Runs kept for the dashboard, and differences / applications stored per run (`total` counts all). */
const KEEP_RUNS = 30;
const MAX_STORED = 500;
/** Stripe's largest page; also the batch of one instance lookup. */
const PAGE_SIZE = 100;
/** A listing longer than this many pages stops the run (50 000 objects): never a partial answer. */
export const MAX_PAGES = 500;
/** Completed checkouts are looked at this far back (Stripe lists events for 30 days). */
export const SESSION_WINDOW_MS = 30 * 24 * 60 * 60_000;
/** Instances counted per query when the fleet's size decides the brake. */
const FLEET_PAGE = 500;
const FLEET_STATUSES = vInstanceStatus.members.map((m) => m.value).filter((s): s is Exclude<InstanceStatus, "deleted"> => s !== "deleted");
const RESULT_MAX_CHARS = 300;

const vRun = schema.tables.reconciliationRuns.validator;
const vResult = v.object({
  dryRun: v.boolean(),
  braked: v.boolean(),
  differences: vRun.fields.differences,
  applied: vRun.fields.applied,
});

export type ReconcileResult = { dryRun: boolean; braked: boolean; differences: Difference[]; applied: AppliedDifference[] };

const vInstanceFacts = v.object({
  instanceId: v.string(),
  status: vInstanceStatus,
  stripeSubscriptionId: v.optional(v.string()),
  deprovisionAt: v.optional(v.number()),
  pastDueSince: v.optional(v.number()),
  applied: v.optional(v.object({ subscriptionId: v.string(), status: vSubscriptionStatus })),
  busy: v.boolean(),
});

/**
 * The instance each subscription belongs to, as the webhooks find it (instanceForSubscription),
 * with what classification needs. One page of Stripe's list at a time: a bounded read each.
 */
export const getSubscriptionFacts = internalQuery({
  args: { subscriptions: v.array(vSubscriptionSummary) },
  returns: v.array(v.union(v.null(), vInstanceFacts)),
  handler: async (ctx, { subscriptions }) => {
    if (subscriptions.length > PAGE_SIZE) fail("BAD_REQUEST", `at most ${PAGE_SIZE} subscriptions per lookup`);
    const facts: (InstanceFacts | null)[] = [];
    for (const subscription of subscriptions) {
      const instance = await instanceForSubscription(ctx, subscription);
      if (!instance) {
        facts.push(null);
        continue;
      }
      const job = await latestJob(ctx, instance._id);
      facts.push({
        instanceId: instance._id,
        status: instance.status,
        ...(instance.stripeSubscriptionId !== undefined ? { stripeSubscriptionId: instance.stripeSubscriptionId } : {}),
        ...(instance.deprovisionAt !== undefined ? { deprovisionAt: instance.deprovisionAt } : {}),
        ...(instance.pastDueSince !== undefined ? { pastDueSince: instance.pastDueSince } : {}),
        ...(instance.subscription ? { applied: { subscriptionId: instance.subscription.subscriptionId, status: instance.subscription.status } } : {}),
        busy: job !== null && (job.status === "queued" || job.status === "running"),
      });
    }
    return facts;
  },
});

/** The instance of each checkout session: by its session id, else by its subscription (null: none). */
export const getSessionFacts = internalQuery({
  args: { sessions: v.array(v.object({ sessionId: v.string(), subscriptionId: v.optional(v.string()) })) },
  returns: v.array(v.union(v.null(), v.id("instances"))),
  handler: async (ctx, { sessions }) => {
    if (sessions.length > PAGE_SIZE) fail("BAD_REQUEST", `at most ${PAGE_SIZE} sessions per lookup`);
    const found: (Id<"instances"> | null)[] = [];
    for (const { sessionId, subscriptionId } of sessions) {
      const bySession = await ctx.db
        .query("instances")
        .withIndex("by_checkoutSessionId", (q) => q.eq("checkoutSessionId", sessionId))
        .first();
      const bySubscription =
        bySession || !subscriptionId
          ? null
          : await ctx.db
              .query("instances")
              .withIndex("by_stripeSubscriptionId", (q) => q.eq("stripeSubscriptionId", subscriptionId))
              .first();
      found.push((bySession ?? bySubscription)?._id ?? null);
    }
    return found;
  },
});

/** One page of the instances of one status (the fleet count behind the brake). */
export const countInstances = internalQuery({
  args: { status: vInstanceStatus, cursor: v.union(v.null(), v.string()) },
  returns: v.object({ count: v.number(), continueCursor: v.string(), isDone: v.boolean() }),
  handler: async (ctx, { status, cursor }) => {
    const page = await ctx.db
      .query("instances")
      .withIndex("by_status_and_pagesProjectName", (q) => q.eq("status", status))
      .paginate({ cursor, numItems: FLEET_PAGE });
    return { count: page.page.length, continueCursor: page.continueCursor, isDone: page.isDone };
  },
});

/**
 * A paid checkout whose `checkout.session.completed` never arrived (or was never processed):
 * provisioned as the webhook would, idempotently by session id (a customer resubscribing within
 * the grace gets their instance back).
 */
export const provisionMissedCheckout = internalMutation({
  args: {
    checkout: vCheckoutSummary,
    /** The session's `created` (ms). */
    createdAt: v.number(),
    correlationId: v.string(),
    actor: v.string(),
    pagesCapExceeded: v.optional(v.string()),
  },
  returns: v.object({ outcome: vStripeEventOutcome, detail: v.optional(v.string()), instanceId: v.optional(v.id("instances")) }),
  handler: async (ctx, { checkout, createdAt, correlationId, actor, pagesCapExceeded }) => {
    let config: Config;
    try {
      config = loadConfig();
      requireLiveCredentials(config);
    } catch (error) {
      // As for the webhook: a bad configuration must not lose a paid customer, so say so loudly.
      const detail = isBrainError(error) ? error.data.message : String(error);
      await appendAudit(ctx, { actor, action: "reconcile.needs_attention", detail: `session ${checkout.sessionId}: ${detail}`.slice(0, 1000) });
      return { outcome: "needs_attention" as const, detail };
    }
    return await provisionCheckout(ctx, config, checkout, {
      correlationId,
      actor,
      createdAt,
      ...(pagesCapExceeded ? { pagesCapExceeded } : {}),
    });
  },
});

/** Stores one run (at most MAX_STORED differences and applications), keeps the newest KEEP_RUNS. */
export const recordRun = internalMutation({
  args: { ...vRun.fields, audit: v.optional(v.object({ action: v.string(), detail: v.string() })) },
  returns: v.null(),
  handler: async (ctx, { audit, ...run }) => {
    await ctx.db.insert("reconciliationRuns", {
      ...run,
      differences: run.differences.slice(0, MAX_STORED),
      applied: run.applied.slice(0, MAX_STORED),
    });
    // Each insert prunes, so at most KEEP_RUNS + 1 rows exist and this page reaches them all.
    const newest = await ctx.db
      .query("reconciliationRuns")
      .withIndex("by_startedAt")
      .order("desc")
      .take(KEEP_RUNS + 10);
    for (const old of newest.slice(KEEP_RUNS)) await ctx.db.delete("reconciliationRuns", old._id);
    if (audit) await appendAudit(ctx, { actor: run.actor, ...audit });
    return null;
  },
});

/** Dashboard (`reconciliation:getLastRun`): the newest stored run, or null before the first. */
export const getLastRun = internalQuery({
  args: {},
  returns: v.union(v.null(), vRun),
  handler: async (ctx) => {
    const last = await ctx.db.query("reconciliationRuns").withIndex("by_startedAt").order("desc").first();
    if (!last) return null;
    const { _id, _creationTime, ...run } = last;
    return run;
  },
});

/** Cron (dryRun false) and dashboard: one reconciliation run, stored, and its differences. */
export const runReconciliation = internalAction({
  args: { dryRun: v.boolean(), actor: v.string() },
  returns: vResult,
  handler: cronBatch("reconciliation.runReconciliation", async (ctx, { dryRun, actor }: { dryRun: boolean; actor: string }) => reconcile(ctx, loadConfig(), { dryRun, actor })),
});

/** Every item of a Stripe list, page after page; more than MAX_PAGES pages fails the listing. */
async function listAll<T>(what: string, fetchPage: (startingAfter: string | undefined) => Promise<StripePage<T>>, idOf: (item: T) => string): Promise<T[]> {
  const items: T[] = [];
  let startingAfter: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const { data, hasMore } = await fetchPage(startingAfter);
    items.push(...data);
    if (!hasMore || data.length === 0) return items;
    startingAfter = idOf(data[data.length - 1]);
  }
  return fail("PROVIDER_UNAVAILABLE", `Stripe's ${what} run past ${MAX_PAGES} pages; nothing was compared`);
}

/** Non-deleted instances, counted page by page per status, stopping once `enough` are seen. */
async function countFleet(ctx: ActionCtx, enough: number): Promise<number> {
  let fleet = 0;
  for (const status of FLEET_STATUSES) {
    let cursor: string | null = null;
    for (;;) {
      const page: { count: number; continueCursor: string; isDone: boolean } = await ctx.runQuery(internal.reconciliation.countInstances, { status, cursor });
      fleet += page.count;
      if (fleet >= enough) return fleet;
      if (page.isDone) break;
      cursor = page.continueCursor;
    }
  }
  return fleet;
}

const resultOf = (outcome: string, detail: string | undefined) => `${outcome}${detail ? `: ${detail}` : ""}`.slice(0, RESULT_MAX_CHARS);

/** Applies one finding through the lifecycle's own paths; its result says what they answered. */
async function applyFinding(
  ctx: ActionCtx,
  config: Config,
  finding: Finding,
  at: { observedAt: number; actor: string; correlationId: string },
): Promise<AppliedDifference> {
  const { difference, remedy } = finding;
  try {
    if (remedy.kind === "snapshot") {
      const result = await ctx.runMutation(internal.lifecycle.applySubscriptionSnapshot, {
        subscription: remedy.subscription,
        observedAt: at.observedAt,
        actor: at.actor,
      });
      return { ...difference, result: resultOf(result.outcome, result.detail) };
    }
    if (remedy.kind === "provision") {
      const pagesCapExceeded = providerMode(config, "cloudflare") === "live" ? await ctx.runQuery(internal.stripe.checkPagesCap, {}) : null;
      const result = await ctx.runMutation(internal.reconciliation.provisionMissedCheckout, {
        checkout: remedy.checkout,
        createdAt: remedy.createdAt,
        correlationId: `${at.correlationId}:${remedy.checkout.sessionId}`,
        actor: at.actor,
        ...(pagesCapExceeded ? { pagesCapExceeded } : {}),
      });
      return { ...difference, ...(result.instanceId ? { instanceId: result.instanceId } : {}), result: resultOf(result.outcome, result.detail) };
    }
    return { ...difference, result: "reported" };
  } catch (error) {
    // One failed application must not stop the others; the next run finds it again.
    log("error", "reconcile.apply_failed", { correlationId: at.correlationId, type: difference.type, action: difference.action, error: String(error) });
    return { ...difference, result: resultOf("error", isBrainError(error) ? error.data.message : String(error)) };
  }
}

/**
 * One reconciliation run: list, look up, classify, brake, apply (unless `dryRun`), store. The
 * route calls it directly; the cron through runReconciliation. A listing that fails is stored
 * with its note and fails the call (PROVIDER_UNAVAILABLE): nothing is classified from half a list.
 */
export async function reconcile(ctx: ActionCtx, config: Config, { dryRun, actor }: { dryRun: boolean; actor: string }): Promise<ReconcileResult> {
  const startedAt = Date.now();
  const correlationId = `reconcile:${startedAt}`;
  const stripe = providersFor({ ctx, config, correlationId }).stripe;
  const createdAfter = Math.floor((startedAt - SESSION_WINDOW_MS) / 1000);

  let subscriptions: SubscriptionSnapshot[] | undefined;
  let sessions: CheckoutSnapshot[];
  try {
    subscriptions = await listAll("subscriptions", (startingAfter) => stripe.listSubscriptions({ startingAfter, limit: PAGE_SIZE }), (s) => s.subscriptionId);
    sessions = await listAll(
      "checkout sessions",
      (startingAfter) => stripe.listCheckoutSessions({ createdAfter, startingAfter, limit: PAGE_SIZE }),
      (s) => s.sessionId,
    );
  } catch (error) {
    const message = isBrainError(error) ? error.data.message : (() => {
      const { outcome } = outcomeForError(error);
      return "message" in outcome ? outcome.message : String(error);
    })();
    const note = `listing Stripe failed; nothing was compared or applied: ${message}`.slice(0, 1000);
    log("error", "reconcile.listing_failed", { correlationId, actor, error: message });
    await ctx.runMutation(internal.reconciliation.recordRun, {
      startedAt,
      finishedAt: Date.now(),
      actor,
      dryRun,
      braked: false,
      note,
      subscriptionsSeen: subscriptions?.length ?? 0,
      sessionsSeen: 0,
      total: 0,
      differences: [],
      applied: [],
      audit: { action: "reconcile.listing_failed", detail: note },
    });
    return fail("PROVIDER_UNAVAILABLE", note);
  }

  // The instances, a page of Stripe's list per query.
  const subscriptionFindings: SubscriptionFinding[] = [];
  for (let start = 0; start < subscriptions.length; start += PAGE_SIZE) {
    const page = subscriptions.slice(start, start + PAGE_SIZE);
    const facts = await ctx.runQuery(internal.reconciliation.getSubscriptionFacts, {
      subscriptions: page.map(({ created: _created, ...summary }) => summary),
    });
    page.forEach((subscription, i) => subscriptionFindings.push({ subscription, instance: facts[i] }));
  }
  const sessionFindings: SessionFinding[] = [];
  for (let start = 0; start < sessions.length; start += PAGE_SIZE) {
    const page = sessions.slice(start, start + PAGE_SIZE);
    const found = await ctx.runQuery(internal.reconciliation.getSessionFacts, {
      sessions: page.map((s) => ({ sessionId: s.sessionId, ...(s.subscriptionId ? { subscriptionId: s.subscriptionId } : {}) })),
    });
    page.forEach((session, i) => sessionFindings.push({ session, instanceId: found[i] }));
  }

  const findings = classify({ subscriptions: subscriptionFindings, sessions: sessionFindings, config, now: Date.now() });
  const differences = findings.map((f) => f.difference);
  let verdict = brake(differences, 0, config.RECONCILE_MAX_CHANGES);
  // The fleet's size matters only past RECONCILE_MAX_CHANGES, and only up to what would let the run pass.
  let fleet: number | undefined;
  if (verdict.braked) {
    fleet = await countFleet(ctx, fleetNeededFor(verdict.destructive));
    verdict = brake(differences, fleet, config.RECONCILE_MAX_CHANGES);
  }

  const applied: AppliedDifference[] = [];
  let note: string | undefined;
  let audit: { action: string; detail: string } | undefined;
  if (verdict.braked) {
    note = `braked: ${verdict.destructive} suspensions or deprovisions exceed the limit of ${verdict.limit} (RECONCILE_MAX_CHANGES ${config.RECONCILE_MAX_CHANGES}, or 5% of ${fleet} instances); nothing applied`;
    if (!dryRun) {
      audit = { action: "reconcile.braked", detail: note };
      // The alert: an error line for the deployment's log stream. TODO(alerting): page the
      // operator through the alerting module once it lands; until then this line is the alert.
      log("error", "reconcile.braked", { correlationId, actor, destructive: verdict.destructive, limit: verdict.limit, fleet, differences: differences.length });
    }
  } else if (!dryRun) {
    const at = { observedAt: startedAt, actor, correlationId };
    for (const finding of findings) {
      if (finding.remedy.kind === "none") continue;
      applied.push(await applyFinding(ctx, config, finding, at));
    }
  }

  await ctx.runMutation(internal.reconciliation.recordRun, {
    startedAt,
    finishedAt: Date.now(),
    actor,
    dryRun,
    braked: verdict.braked,
    ...(note ? { note } : {}),
    subscriptionsSeen: subscriptions.length,
    sessionsSeen: sessions.length,
    total: differences.length,
    // Arguments have a size limit too: only what is stored travels.
    differences: differences.slice(0, MAX_STORED),
    applied: applied.slice(0, MAX_STORED),
    ...(audit ? { audit } : {}),
  });
  log("info", "reconcile.finished", {
    correlationId,
    actor,
    dryRun,
    braked: verdict.braked,
    subscriptions: subscriptions.length,
    sessions: sessions.length,
    differences: differences.length,
    applied: applied.length,
    durationMs: Date.now() - startedAt,
  });
  return { dryRun, braked: verdict.braked, differences, applied };
}
