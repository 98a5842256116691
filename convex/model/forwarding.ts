// Forwarding Stripe events to the tenant they belong to (ARCHITECTURE, "Stripe"): the plain
// logic behind convex/forwarding.ts. A delivery row is queued in the transaction that records
// the event; a per-tenant pump sends the tenant's oldest pending delivery, one at a time, in
// `eventCreated` order, re-signed with THAT tenant's secret. Never logs a secret or a body.
//
// Read and write sets (ARCHITECTURE, "Concurrency"; Convex retries a transaction whose reads
// another one wrote):
// - queueDeliveries (Stripe intake, hot) reads only the instance documents it is given and one
//   point of `by_instanceId_and_eventId` per instance; it writes the new rows and a scheduled
//   pump. Two intakes collide only on the same (instance, event): a duplicate, retried once.
// - A pump's mutations (claimNext, recordResult) read one instance document and the head of
//   that tenant's pending range (`by_instanceId_and_status_and_eventCreated`, from its start to
//   the head), and write that one row. Another tenant's rows are never in their read set. An
//   intake for the same tenant collides only when its event is older than the head (it lands
//   inside the range read): the retry then picks the older event, which is the order we want.
// - kickForwarding (in the engine's activation or resume transaction) reads and writes up to a
//   batch of that one tenant's pending rows; only an intake for the same tenant can collide.
// - The cron sweep reads a range of `by_status_and_nextAttemptAt` that every failed attempt
//   writes; it only schedules, so it is the one retried, never a hot path.
import { internal } from "../_generated/api";
import type { Doc, Id } from "../_generated/dataModel";
import type { MutationCtx, QueryCtx } from "../_generated/server";
import { v, type Infer } from "convex/values";
import { backoffDelayMs } from "../lib/backoff";
import { loadConfig, retryPolicy, type Config } from "../lib/config";
import { vDeliveryStatus, type InstanceStatus } from "../lib/validators";
import { log } from "../lib/log";
import { appendAudit } from "./audit";

/** Instance statuses whose deployment runs and can take events (whatever its health says: it still gets tries). */
export const RECEIVING_STATUSES: ReadonlySet<InstanceStatus> = new Set<InstanceStatus>(["active"]);

/** Rows one mutation changes at most when it walks a tenant's queue (stop, hold end); more continue in a scheduled mutation. */
export const BATCH = 100;
/** Expired heads one claim gives up at most before it answers (the pump asks again). */
const MAX_EXPIRED_PER_CLAIM = 25;
/** Rows one sweep transaction reads; a longer sweep continues in a scheduled mutation. */
export const SWEEP_PAGE = 200;

const DELIVERY_FAILED = "delivery.failed";
const PUMP_ACTOR = "system:forwarding";

type Delivery = Doc<"tenantDeliveries">;
type Instance = Doc<"instances">;

/** The deployment and sealed secret an instance is sent to, or null while it cannot receive (held). */
export function receivingTarget(instance: Instance | null): { deploymentName: string; secretCiphertext: string } | null {
  if (!instance || !RECEIVING_STATUSES.has(instance.status)) return null;
  const deploymentName = instance.resources.convexDeploymentName;
  const secretCiphertext = instance.resources.tenantWebhookSecretCiphertext;
  return deploymentName && secretCiphertext ? { deploymentName, secretCiphertext } : null;
}

/** How long a claim holds a tenant's queue: the send's own timeout and then some; a dead pump's lease lapses after it. */
export const leaseMs = (config: Config) => config.PROVIDER_TIMEOUT_MS + 60_000;

const pendingOf = (ctx: QueryCtx, instanceId: Id<"instances">) =>
  ctx.db
    .query("tenantDeliveries")
    .withIndex("by_instanceId_and_status_and_eventCreated", (q) => q.eq("instanceId", instanceId).eq("status", "pending"));

/** The tenant's oldest pending delivery: the only one that may be sent. */
export const headOf = (ctx: QueryCtx, instanceId: Id<"instances">) => pendingOf(ctx, instanceId).first();

/** Schedules the tenant's pump (at `at`, else now). Harmless when one already runs: the second finds the head in flight and exits. */
export async function schedulePump(ctx: MutationCtx, instanceId: Id<"instances">, at?: number): Promise<void> {
  if (at === undefined || at <= Date.now()) await ctx.scheduler.runAfter(0, internal.forwarding.forwardTenantEvents, { instanceId });
  else await ctx.scheduler.runAt(at, internal.forwarding.forwardTenantEvents, { instanceId });
}

/** The event as Stripe intake hands it over. `createdAt` is Stripe's `created` in ms; `body` the exact bytes Stripe sent. */
export type ForwardableEvent = { eventId: string; type: string; createdAt: number; body: string };

/**
 * Queues `event` for each of `instanceIds`, in the caller's transaction: call it from the
 * mutation that records the event (stripe.recordStripeEvent), or from the one that creates
 * the instance a first checkout's events belong to. Routing is the caller's: pass only the
 * instances the event belongs to. Returns how many rows it inserted.
 *
 * - Types not in TENANT_EVENT_TYPES are skipped (0).
 * - One row per (instance, event id): a redelivered or re-queued event inserts nothing.
 * - Unknown and `deleted` instances are skipped; every other status is queued (a held
 *   instance, e.g. provisioning or suspended, keeps its rows pending until kickForwarding).
 * - Rows start `pending`, attempts 0, nextAttemptAt now, expiresAt now + TENANT_FORWARD_MAX_AGE_MS.
 * - The pump of each instance that can receive now is scheduled (it runs after commit).
 *
 * Reads only the given instance documents and the (instanceId, eventId) index (see the header).
 *
 * ```ts
 * await queueDeliveries(ctx, config, { eventId: event.id, type: event.type, createdAt: event.created * 1000, body }, [instance._id]);
 * ```
 */
export async function queueDeliveries(
  ctx: MutationCtx,
  config: Config,
  event: ForwardableEvent,
  instanceIds: Id<"instances">[],
): Promise<number> {
  if (!config.TENANT_EVENT_TYPES.includes(event.type)) return 0;
  const now = Date.now();
  let inserted = 0;
  for (const instanceId of new Set(instanceIds)) {
    const instance = await ctx.db.get("instances", instanceId);
    if (!instance || instance.status === "deleted") continue;
    const existing = await ctx.db
      .query("tenantDeliveries")
      .withIndex("by_instanceId_and_eventId", (q) => q.eq("instanceId", instanceId).eq("eventId", event.eventId))
      .first();
    if (existing) continue;
    await ctx.db.insert("tenantDeliveries", {
      instanceId,
      eventId: event.eventId,
      eventType: event.type,
      eventCreated: event.createdAt,
      body: event.body,
      status: "pending",
      attempts: 0,
      nextAttemptAt: now,
      expiresAt: now + config.TENANT_FORWARD_MAX_AGE_MS,
      createdAt: now,
    });
    inserted++;
    if (receivingTarget(instance)) await schedulePump(ctx, instanceId);
  }
  return inserted;
}

/**
 * The end of a hold: call it in the transaction that makes the instance able to receive
 * (status `active` after provisioning, or after a resume), after patching the instance.
 *
 * Every pending delivery of the instance gets a fresh window, expiresAt = max(expiresAt,
 * now + TENANT_FORWARD_MAX_AGE_MS), so time spent held never counts against it; then the pump
 * is scheduled if anything is pending. The first BATCH rows are renewed in the caller's
 * transaction (the head among them), the rest in a scheduled continuation.
 * Not for routine nudges (the sweep and redeliver schedule the pump without renewing windows).
 * Adds to the caller's transaction: a read of up to BATCH + 1 of this tenant's pending rows and
 * writes to them (no `paginate()`, so the caller may paginate). `config` defaults to the environment's.
 */
export async function kickForwarding(ctx: MutationCtx, instanceId: Id<"instances">, config: Config = loadConfig()): Promise<void> {
  const { pending } = await renewWindows(ctx, instanceId, Date.now() + config.TENANT_FORWARD_MAX_AGE_MS, null);
  if (pending) await schedulePump(ctx, instanceId);
}

/** Where a walk over a tenant's pending rows stopped: the last row's index position (eventCreated, then _creationTime). */
export const vQueuePosition = v.object({ eventCreated: v.number(), creationTime: v.number() });
export type QueuePosition = Infer<typeof vQueuePosition>;

/**
 * Renews the windows of one batch of the instance's pending deliveries, after `after` (see
 * kickForwarding), to `expiresAt`, and schedules the next batch. Returns whether this batch
 * found any. No `paginate()`: Convex allows one per transaction, and this runs inside the
 * caller's (the engine's) transaction; the position is the index's own order instead.
 */
export async function renewWindows(
  ctx: MutationCtx,
  instanceId: Id<"instances">,
  expiresAt: number,
  after: QueuePosition | null,
): Promise<{ pending: boolean }> {
  let rows: Delivery[];
  if (after === null) {
    rows = await pendingOf(ctx, instanceId).take(BATCH + 1);
  } else {
    const sameTime = await ctx.db
      .query("tenantDeliveries")
      .withIndex("by_instanceId_and_status_and_eventCreated", (q) =>
        q.eq("instanceId", instanceId).eq("status", "pending").eq("eventCreated", after.eventCreated).gt("_creationTime", after.creationTime),
      )
      .take(BATCH + 1);
    const later =
      sameTime.length > BATCH
        ? []
        : await ctx.db
            .query("tenantDeliveries")
            .withIndex("by_instanceId_and_status_and_eventCreated", (q) =>
              q.eq("instanceId", instanceId).eq("status", "pending").gt("eventCreated", after.eventCreated),
            )
            .take(BATCH + 1 - sameTime.length);
    rows = [...sameTime, ...later];
  }
  const batch = rows.slice(0, BATCH);
  for (const row of batch) {
    if (row.expiresAt < expiresAt) await ctx.db.patch("tenantDeliveries", row._id, { expiresAt });
  }
  if (rows.length > BATCH) {
    const last = batch[batch.length - 1];
    await ctx.scheduler.runAfter(0, internal.forwarding.renewHeldDeliveries, {
      instanceId,
      expiresAt,
      after: { eventCreated: last.eventCreated, creationTime: last._creationTime },
    });
  }
  return { pending: batch.length > 0 };
}

/**
 * Gives up every pending delivery of the instance: status `failed`, lastError = `reason`.
 * Call it when the instance will never receive again (deprovisioned); deleted instances get
 * nothing queued afterwards. The first BATCH rows change in the caller's transaction, the rest
 * in scheduled continuations. A send already in flight may still arrive; its result is then
 * stale and changes nothing. One audit row (`deliveries.stopped`) per batch.
 */
export async function stopForwarding(ctx: MutationCtx, instanceId: Id<"instances">, reason: string): Promise<void> {
  await stopBatch(ctx, instanceId, reason);
}

/** One batch of stopForwarding; schedules the next when more are pending. Returns how many it failed. */
export async function stopBatch(ctx: MutationCtx, instanceId: Id<"instances">, reason: string): Promise<number> {
  const rows = await pendingOf(ctx, instanceId).take(BATCH + 1);
  const batch = rows.slice(0, BATCH);
  for (const row of batch) {
    await ctx.db.patch("tenantDeliveries", row._id, { status: "failed", lastError: reason, inFlight: undefined });
  }
  if (batch.length > 0) {
    await appendAudit(ctx, {
      actor: PUMP_ACTOR,
      action: "deliveries.stopped",
      instanceId,
      detail: `${batch.length} pending deliveries failed: ${reason}`,
    });
  }
  if (rows.length > BATCH) await ctx.scheduler.runAfter(0, internal.forwarding.stopPendingDeliveries, { instanceId, reason });
  return batch.length;
}

async function giveUp(ctx: MutationCtx, row: Delivery, patch: Partial<Delivery>, why: string): Promise<void> {
  await ctx.db.patch("tenantDeliveries", row._id, { ...patch, status: "failed", inFlight: undefined });
  const attempts = patch.attempts ?? row.attempts;
  await appendAudit(ctx, {
    actor: PUMP_ACTOR,
    action: DELIVERY_FAILED,
    instanceId: row.instanceId,
    attempt: attempts,
    detail: `${row.eventType} ${row.eventId}: ${why}`,
  });
  log("warn", "forward.failed", { correlationId: row.eventId, instanceId: row.instanceId, deliveryId: row._id, attempts });
}

export const vClaim = v.union(
  v.object({
    kind: v.literal("claimed"),
    deliveryId: v.id("tenantDeliveries"),
    token: v.string(),
    attempt: v.number(),
    eventId: v.string(),
    eventType: v.string(),
    body: v.string(),
    deploymentName: v.string(),
    secretCiphertext: v.string(),
  }),
  /** Nothing to send now: no such instance, held, nothing pending, the head in flight elsewhere, or waiting out its backoff. */
  v.object({ kind: v.literal("none"), reason: v.union(v.literal("gone"), v.literal("held"), v.literal("idle"), v.literal("busy"), v.literal("waiting")) }),
  /** Gave up this many expired heads; ask again for the next. */
  v.object({ kind: v.literal("expired"), count: v.number() }),
);
export type Claim = Infer<typeof vClaim>;

/**
 * Takes the tenant's head for one send: gives up heads past `expiresAt` (expiry is checked
 * only here, when a send is about to be made), then leases the head with a fresh token.
 */
export async function claimNext(ctx: MutationCtx, config: Config, instanceId: Id<"instances">): Promise<Claim> {
  const now = Date.now();
  const instance = await ctx.db.get("instances", instanceId);
  if (!instance) return { kind: "none", reason: "gone" };
  const target = receivingTarget(instance);
  // Held: the rows stay exactly as they are until kickForwarding.
  if (!target) return { kind: "none", reason: "held" };
  for (let expired = 0; ; expired++) {
    const head = await headOf(ctx, instanceId);
    if (!head) return expired > 0 ? { kind: "expired", count: expired } : { kind: "none", reason: "idle" };
    if (head.inFlight && head.inFlight.until > now) return { kind: "none", reason: "busy" };
    if (now > head.expiresAt) {
      if (expired >= MAX_EXPIRED_PER_CLAIM) return { kind: "expired", count: expired };
      const why = `expired after ${head.attempts} attempts (last: ${head.lastError ?? "none"})`;
      await giveUp(ctx, head, { lastError: why }, why);
      continue;
    }
    if (head.nextAttemptAt > now) return expired > 0 ? { kind: "expired", count: expired } : { kind: "none", reason: "waiting" };
    const token = crypto.randomUUID();
    await ctx.db.patch("tenantDeliveries", head._id, { inFlight: { token, until: now + leaseMs(config) } });
    return {
      kind: "claimed",
      deliveryId: head._id,
      token,
      attempt: head.attempts + 1,
      eventId: head.eventId,
      eventType: head.eventType,
      body: head.body,
      deploymentName: target.deploymentName,
      secretCiphertext: target.secretCiphertext,
    };
  }
}

/** What one send came to: the tenant's answer, or why there was none (never a body or a secret). */
export const vAttemptOutcome = v.union(
  v.object({ kind: v.literal("answered"), status: v.number() }),
  v.object({ kind: v.literal("error"), message: v.string() }),
);
export type AttemptOutcome = Infer<typeof vAttemptOutcome>;

export const vRecordResult = v.union(
  v.object({ kind: v.literal("delivered") }),
  v.object({ kind: v.literal("retrying"), nextAttemptAt: v.number() }),
  v.object({ kind: v.literal("failed") }),
  /** Not the current attempt (its lease was taken over, or the row was stopped or redelivered): nothing changed. */
  v.object({ kind: v.literal("stale") }),
);
export type RecordResult = Infer<typeof vRecordResult>;

/**
 * Records one send of a claimed delivery, if `token` still holds it. 2xx: delivered. Anything
 * else: retried after the backoff (RETRY_BASE_DELAY_MS doubling per attempt, jitter
 * RETRY_JITTER, capped at RETRY_MAX_DELAY_MS), never later than `expiresAt`, so the last try
 * is made at the expiry; a failure at or past it gives up (`failed`, audited).
 */
export async function recordResult(
  ctx: MutationCtx,
  config: Config,
  deliveryId: Id<"tenantDeliveries">,
  token: string,
  outcome: AttemptOutcome,
  random: () => number = Math.random,
): Promise<RecordResult> {
  const now = Date.now();
  const row = await ctx.db.get("tenantDeliveries", deliveryId);
  if (!row || row.status !== "pending" || row.inFlight?.token !== token) return { kind: "stale" };
  const attempts = row.attempts + 1;
  const answered = outcome.kind === "answered";
  const attempt = { attempts, lastAttemptAt: now, lastStatus: answered ? outcome.status : undefined };
  if (answered && outcome.status >= 200 && outcome.status < 300) {
    await ctx.db.patch("tenantDeliveries", deliveryId, { ...attempt, lastError: undefined, status: "delivered", deliveredAt: now, inFlight: undefined });
    return { kind: "delivered" };
  }
  const lastError = answered ? `HTTP ${outcome.status}` : outcome.message.slice(0, 500);
  if (now >= row.expiresAt) {
    await giveUp(ctx, row, { ...attempt, lastError }, `gave up after ${attempts} attempts at its expiry (last: ${lastError})`);
    return { kind: "failed" };
  }
  const nextAttemptAt = Math.min(now + backoffDelayMs(retryPolicy(config), attempts, random), row.expiresAt);
  await ctx.db.patch("tenantDeliveries", deliveryId, { ...attempt, lastError, nextAttemptAt, inFlight: undefined });
  await schedulePump(ctx, row.instanceId, nextAttemptAt);
  return { kind: "retrying", nextAttemptAt };
}

/**
 * The cron backstop: one page of pending rows due by `now`; each distinct instance that can
 * receive and whose head is due and not held by a live lease gets its pump scheduled (this is
 * also how a pump that died holding a lease resumes, once `inFlight.until` passed). Continues
 * with the next page in a scheduled mutation. Returns the instances kicked.
 */
export async function sweepDue(ctx: MutationCtx, now: number, cursor: string | null): Promise<number> {
  const page = await ctx.db
    .query("tenantDeliveries")
    .withIndex("by_status_and_nextAttemptAt", (q) => q.eq("status", "pending").lte("nextAttemptAt", now))
    .paginate({ numItems: SWEEP_PAGE, cursor });
  let kicked = 0;
  for (const instanceId of new Set(page.page.map((row) => row.instanceId))) {
    if (!receivingTarget(await ctx.db.get("instances", instanceId))) continue;
    const head = await headOf(ctx, instanceId);
    if (!head || head.nextAttemptAt > now || (head.inFlight && head.inFlight.until > now)) continue;
    await schedulePump(ctx, instanceId);
    kicked++;
  }
  if (!page.isDone) {
    await ctx.scheduler.runAfter(0, internal.forwarding.retryDueDeliveries, { now, cursor: page.continueCursor });
  }
  return kicked;
}

/** One delivery as the admin API and the dashboard show it (never the body). */
export const vDeliveryView = v.object({
  deliveryId: v.id("tenantDeliveries"),
  eventId: v.string(),
  instanceId: v.id("instances"),
  eventType: v.string(),
  status: vDeliveryStatus,
  attempts: v.number(),
  lastStatus: v.optional(v.number()),
  lastError: v.optional(v.string()),
  lastAttemptAt: v.optional(v.number()),
  nextAttemptAt: v.number(),
  expiresAt: v.number(),
  eventCreated: v.number(),
  createdAt: v.number(),
  deliveredAt: v.optional(v.number()),
  inFlight: v.boolean(),
});
export type DeliveryView = Infer<typeof vDeliveryView>;

export function deliveryView(row: Delivery, now: number): DeliveryView {
  return {
    deliveryId: row._id,
    eventId: row.eventId,
    instanceId: row.instanceId,
    eventType: row.eventType,
    status: row.status,
    attempts: row.attempts,
    ...(row.lastStatus !== undefined ? { lastStatus: row.lastStatus } : {}),
    ...(row.lastError !== undefined ? { lastError: row.lastError } : {}),
    ...(row.lastAttemptAt !== undefined ? { lastAttemptAt: row.lastAttemptAt } : {}),
    nextAttemptAt: row.nextAttemptAt,
    expiresAt: row.expiresAt,
    eventCreated: row.eventCreated,
    createdAt: row.createdAt,
    ...(row.deliveredAt !== undefined ? { deliveredAt: row.deliveredAt } : {}),
    inFlight: row.inFlight !== undefined && row.inFlight.until > now,
  };
}

/** An instance's newest `limit` deliveries (by event time), or null when there is no such instance. */
export async function listForInstance(ctx: QueryCtx, rawInstanceId: string, limit: number): Promise<DeliveryView[] | null> {
  const instanceId = ctx.db.normalizeId("instances", rawInstanceId);
  if (!instanceId || !(await ctx.db.get("instances", instanceId))) return null;
  const statuses = ["pending", "delivered", "failed"] as const;
  // The index orders by status first: read each status's newest, then merge.
  const rows = (
    await Promise.all(
      statuses.map((status) =>
        ctx.db
          .query("tenantDeliveries")
          .withIndex("by_instanceId_and_status_and_eventCreated", (q) => q.eq("instanceId", instanceId).eq("status", status))
          .order("desc")
          .take(limit),
      ),
    )
  ).flat();
  rows.sort((a, b) => b.eventCreated - a.eventCreated || b._creationTime - a._creationTime);
  const now = Date.now();
  return rows.slice(0, limit).map((row) => deliveryView(row, now));
}

export const vRedeliverResult = v.union(
  v.object({ kind: v.literal("redelivered"), deliveryId: v.id("tenantDeliveries"), status: v.literal("pending") }),
  v.object({ kind: v.literal("refused"), code: v.union(v.literal("NOT_FOUND"), v.literal("INSTANCE_DELETED")), message: v.string() }),
);
export type RedeliverResult = Infer<typeof vRedeliverResult>;

/**
 * Sends a delivery again, whatever its status: pending, attempts 0 (the backoff starts over),
 * nextAttemptAt now, expiresAt now + TENANT_FORWARD_MAX_AGE_MS, and the pump scheduled. A send
 * in flight keeps its lease (one send per tenant at a time). It goes out in its `eventCreated`
 * place among the tenant's pending deliveries. Refused (and audited) for an unknown id or a
 * deleted instance.
 */
export async function redeliver(ctx: MutationCtx, config: Config, rawDeliveryId: string, actor: string): Promise<RedeliverResult> {
  const deliveryId = ctx.db.normalizeId("tenantDeliveries", rawDeliveryId);
  const row = deliveryId ? await ctx.db.get("tenantDeliveries", deliveryId) : null;
  if (!row) {
    await appendAudit(ctx, { actor, action: "delivery.redeliver_refused", detail: `no delivery ${rawDeliveryId.slice(0, 64)}` });
    return { kind: "refused", code: "NOT_FOUND", message: `no delivery ${rawDeliveryId}` };
  }
  const instance = await ctx.db.get("instances", row.instanceId);
  if (!instance || instance.status === "deleted") {
    await appendAudit(ctx, { actor, action: "delivery.redeliver_refused", instanceId: row.instanceId, detail: `${row.eventId}: instance deleted` });
    return { kind: "refused", code: "INSTANCE_DELETED", message: `the instance of delivery ${row._id} is deleted` };
  }
  const now = Date.now();
  await ctx.db.patch("tenantDeliveries", row._id, {
    status: "pending",
    attempts: 0,
    nextAttemptAt: now,
    expiresAt: now + config.TENANT_FORWARD_MAX_AGE_MS,
    deliveredAt: undefined,
    ...(row.status === "pending" ? {} : { inFlight: undefined }),
  });
  await appendAudit(ctx, {
    actor,
    action: "delivery.redelivered",
    instanceId: row.instanceId,
    attempt: row.attempts,
    detail: `${row.eventType} ${row.eventId} (was ${row.status} after ${row.attempts} attempts)`,
  });
  await schedulePump(ctx, row.instanceId);
  return { kind: "redelivered", deliveryId: row._id, status: "pending" };
}
