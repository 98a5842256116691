// Alerts for incidents (issue #9): when an incident's one alert (and its optional reminders)
// goes out, maintenance windows that hold it, and the outbox that delivers each notice to each
// destination (every ALERT_EMAILS address, the ALERT_WEBHOOK_URL) with retries for 24 h.
// The plain logic behind convex/alerts.ts; model/incidents.ts queues the recovery notice.
//
// Outbox rules (as model/forwarding.ts): a row is leased (`inFlight`) for one send at a time;
// while leased, or waiting out its backoff, its `nextAttemptAt` is in the future, so the cron
// backstop's range (`by_status_and_nextAttemptAt` ≤ now) holds only rows that should go now.
// Per incident and destination, notices arrive in the order they were made: a notice waits
// ("behind") while an older one to the same destination is pending, and is kicked when it ends.
//
// Never logs a secret, the webhook URL or an email address.
import { v, type Infer } from "convex/values";
import { internal } from "../_generated/api";
import type { Doc, Id } from "../_generated/dataModel";
import type { MutationCtx, QueryCtx } from "../_generated/server";
import { backoffDelayMs, type RetryPolicy } from "../lib/backoff";
import type { Config } from "../lib/config";
import { log } from "../lib/log";
import { vAlertChannel, vAlertType, type AlertChannel, type AlertType, type IncidentSeverity } from "../lib/validators";
import { appendAudit } from "./audit";

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** A notice is retried this long after it was made, then given up (`failed`). */
export const DELIVERY_MAX_AGE_MS = DAY;
/** 10 s doubling, capped at 10 min, ±20 %: a destination down for hours is still tried every ~10 min. */
export const DELIVERY_RETRY: RetryPolicy = { maxAttempts: Number.MAX_SAFE_INTEGER, baseDelayMs: 10 * SECOND, maxDelayMs: 10 * MINUTE, jitter: 0.2 };
/** A notice behind an older one is looked at again this much later if nothing kicks it first. */
const BEHIND_RECHECK_MS = MINUTE;
/** Older notices of the same incident one claim looks through for one still pending. */
const SIBLINGS_READ = 100;
/** Due incidents, reminders and deliveries one cron run starts, each. */
export const SWEEP_LIMIT = 100;
/** Maintenance windows read per scope (instance, fleet) when deciding whether one covers now. */
const WINDOWS_READ = 50;
/** Windows GET /admin/maintenance lists at most; those that ended within LISTED_PAST_MS are included. */
export const WINDOWS_LISTED = 200;
export const LISTED_PAST_MS = 7 * DAY;
/** Notes an incident keeps: the first (its alert, or a hold) and the latest; reminders can go on for weeks. */
const NOTIFICATIONS_KEPT = 100;
/** Rows of each table one retention pass deletes. */
export const PRUNE_BATCH = 200;

const ALERTS_ACTOR = "system:alerts";

export const leaseMs = (config: Config) => config.PROVIDER_TIMEOUT_MS + MINUTE;

type Incident = Doc<"incidents">;

/** An incident's log thread: its instance's provisioning event, or its own id (incidents from before). */
export const threadOf = (incident: Pick<Incident, "_id" | "correlationId">): string => incident.correlationId ?? incident._id;
type Delivery = Doc<"alertDeliveries">;
type Window = Doc<"maintenanceWindows">;
type Notification = Incident["notifications"][number];

// ---------------------------------------------------------------------------------------------
// Notices: the JSON body every destination gets, and the email made from it.

/** The webhook body, exactly these keys in this order; `since` and `at` are epoch milliseconds. */
export type AlertNotice = {
  type: InstanceAlertType;
  incidentId: string;
  instanceId: string;
  plan: string;
  status: "degraded" | "down" | "active";
  failing: string[];
  since: number;
  at: number;
};

/** The alert types about an instance (incidents); "security.blocked" is about a source address, "checkout.over_quota" about a refused checkout, "deployKey.rotation_failed" about a tenant's key rotation. */
export type InstanceAlertType = Exclude<AlertType, "security.blocked" | "checkout.over_quota" | "deployKey.rotation_failed">;

export const alertTypeFor = (severity: IncidentSeverity): InstanceAlertType => (severity === "down" ? "instance.down" : "instance.degraded");

export function alertBody(incident: Incident, type: InstanceAlertType, at: number): string {
  const notice: AlertNotice = {
    type,
    incidentId: incident._id,
    instanceId: incident.instanceId,
    plan: incident.plan,
    status: type === "instance.recovered" ? "active" : type === "instance.down" ? "down" : "degraded",
    failing: incident.failing,
    since: incident.since,
    at,
  };
  return JSON.stringify(notice);
}

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

/** The webhook body of a security alert (issue 11): a source address blocked for suspicious activity. */
export type SecurityNotice = {
  type: "security.blocked";
  eventId: string;
  kind: string;
  source: string;
  detail: string;
  blockedUntil: number;
  at: number;
};

/**
 * An operator notice that belongs to no incident: a paid checkout refused over a per-customer
 * quota (docs/security.md#per-customer-quotas). The webhook body, exactly these keys in this order.
 */
export type QuotaNotice = {
  type: "checkout.over_quota";
  eventId: string;
  checkoutSessionId: string;
  /** Absent for a customer Brain has no row for yet (only a quota of 0 refuses one). */
  customerId?: string;
  quota: "instances" | "checkouts";
  limit: number;
  reason: string;
  at: number;
};

const table = (headline: string, rows: [string, string][]) => ({
  text: [headline, "", ...rows.map(([k, value]) => `${k}: ${value}`), ""].join("\n"),
  html:
    `<p>${escapeHtml(headline)}</p>\n<table>\n` +
    rows.map(([k, value]) => `<tr><th align="left">${escapeHtml(k)}</th><td>${escapeHtml(value)}</td></tr>`).join("\n") +
    "\n</table>\n",
});

function quotaEmail(notice: QuotaNotice): { subject: string; text: string; html: string } {
  const subject = `[Brain] checkout ${notice.checkoutSessionId} over quota: nothing provisioned`;
  const headline = `A paid checkout was refused: ${notice.reason}`;
  return {
    subject,
    ...table(headline, [
      ["Quota", notice.quota === "instances" ? "MAX_INSTANCES_PER_CUSTOMER" : "MAX_CHECKOUTS_PER_CUSTOMER_PER_DAY"],
      ["Limit", String(notice.limit)],
      ["Customer", notice.customerId ?? "new"],
      ["Stripe event", notice.eventId],
      ["Notice made at", new Date(notice.at).toISOString()],
    ]),
  };
}

/** The webhook body of a deploy-key rotation alert (issue 11): a tenant's key rotation keeps failing. */
export type DeployKeyNotice = {
  type: "deployKey.rotation_failed";
  instanceId: string;
  /** Consecutive failed attempts (DEPLOY_KEY_ROTATION_ALERT_AFTER or more). */
  failures: number;
  /** The step it is stuck at: creating (making a key), created (verifying it), stored (revoking the old one). */
  phase: string;
  /** The last failure (a provider's class and message; never a key). */
  lastError: string;
  at: number;
};

/** The alert email for a stored body: the subject names the instance and its status (or the blocked source, the refused checkout, the failing key rotation). */
export function alertEmail(body: string): { subject: string; text: string; html: string } {
  const parsed = JSON.parse(body) as AlertNotice | SecurityNotice | QuotaNotice | DeployKeyNotice;
  if (parsed.type === "security.blocked") return securityEmail(parsed);
  if (parsed.type === "checkout.over_quota") return quotaEmail(parsed);
  if (parsed.type === "deployKey.rotation_failed") return deployKeyEmail(parsed);
  const notice = parsed;
  const recovered = notice.type === "instance.recovered";
  const subject = recovered
    ? `[Brain] instance ${notice.instanceId} recovered: active`
    : `[Brain] instance ${notice.instanceId} is ${notice.status}`;
  const headline = recovered ? `Instance ${notice.instanceId} is active again.` : `Instance ${notice.instanceId} is ${notice.status}.`;
  const rows: [string, string][] = [
    ["Plan", notice.plan],
    [recovered ? "Last failing checks" : "Failing checks", notice.failing.length > 0 ? notice.failing.join(", ") : "none"],
    ["Unhealthy since", new Date(notice.since).toISOString()],
    ["Notice made at", new Date(notice.at).toISOString()],
    ["Incident", notice.incidentId],
  ];
  return { subject, ...table(headline, rows) };
}

function securityEmail(notice: SecurityNotice): { subject: string; text: string; html: string } {
  const subject = `[Brain] security: ${notice.source} blocked (${notice.kind})`;
  const headline = `Source ${notice.source} is blocked until ${new Date(notice.blockedUntil).toISOString()}.`;
  const rows: [string, string][] = [
    ["Kind", notice.kind],
    ["Detail", notice.detail],
    ["Blocked at", new Date(notice.at).toISOString()],
    ["Event", notice.eventId],
  ];
  return { subject, ...table(headline, rows) };
}

function deployKeyEmail(notice: DeployKeyNotice): { subject: string; text: string; html: string } {
  const subject = `[Brain] deploy-key rotation of instance ${notice.instanceId} failing (${notice.failures} times)`;
  const headline = `The Convex deploy key of instance ${notice.instanceId} could not be rotated ${notice.failures} times in a row; its current key still works.`;
  return {
    subject,
    ...table(headline, [
      ["Stuck at", notice.phase],
      ["Last error", notice.lastError],
      ["Notice made at", new Date(notice.at).toISOString()],
    ]),
  };
}

// ---------------------------------------------------------------------------------------------
// Destinations and queueing.

type Destination = { channel: AlertChannel; destination: string };

/** Every address in ALERT_EMAILS (once each) and the webhook, recorded by its host only. */
export function destinationsOf(config: Config): Destination[] {
  const emails = [...new Set(config.ALERT_EMAILS.map((address) => address.toLowerCase()))];
  const out: Destination[] = emails.map((destination) => ({ channel: "email", destination }));
  if (config.ALERT_WEBHOOK_URL) out.push({ channel: "webhook", destination: new URL(config.ALERT_WEBHOOK_URL).host });
  return out;
}

async function scheduleSend(ctx: MutationCtx, deliveryId: Id<"alertDeliveries">, at?: number): Promise<void> {
  if (at === undefined || at <= Date.now()) await ctx.scheduler.runAfter(0, internal.alerts.sendAlertDelivery, { deliveryId });
  else await ctx.scheduler.runAt(at, internal.alerts.sendAlertDelivery, { deliveryId });
}

/**
 * Queues one `type` notice about `incident` to every destination, made at `at`, each sent as
 * soon as this transaction commits. Returns how many rows it queued (0: no destination set).
 */
export async function queueNotice(ctx: MutationCtx, config: Config, incident: Incident, type: InstanceAlertType, at: number): Promise<number> {
  const body = alertBody(incident, type, at);
  const now = Date.now();
  const targets = destinationsOf(config);
  for (const { channel, destination } of targets) {
    const deliveryId = await ctx.db.insert("alertDeliveries", {
      incidentId: incident._id,
      instanceId: incident.instanceId,
      type,
      channel,
      destination,
      body,
      status: "pending",
      attempts: 0,
      nextAttemptAt: now,
      expiresAt: now + DELIVERY_MAX_AGE_MS,
      createdAt: now,
    });
    await scheduleSend(ctx, deliveryId);
  }
  if (targets.length === 0) {
    log("warn", "alert.no_destinations", { correlationId: threadOf(incident), incidentId: incident._id, instanceId: incident.instanceId, type });
  }
  return targets.length;
}

/** Queues one standalone notice (no incident) to every destination, sent once this transaction commits. */
async function queueStandalone(
  ctx: MutationCtx,
  config: Config,
  notice: SecurityNotice | QuotaNotice | DeployKeyNotice,
  about: { securityEventId: Id<"securityEvents"> } | { correlationId: string; instanceId?: Id<"instances"> },
): Promise<number> {
  const body = JSON.stringify(notice);
  const now = Date.now();
  const targets = destinationsOf(config);
  for (const { channel, destination } of targets) {
    const deliveryId = await ctx.db.insert("alertDeliveries", {
      ...about,
      type: notice.type,
      channel,
      destination,
      body,
      status: "pending",
      attempts: 0,
      nextAttemptAt: now,
      expiresAt: now + DELIVERY_MAX_AGE_MS,
      createdAt: now,
    });
    await scheduleSend(ctx, deliveryId);
  }
  return targets.length;
}

/**
 * Queues the one security alert of a block (issue 11) to every destination. Called in the
 * transaction that records the block, so each block alerts exactly once.
 */
export async function queueSecurityNotice(ctx: MutationCtx, config: Config, event: Doc<"securityEvents">): Promise<number> {
  const notice: SecurityNotice = {
    type: "security.blocked",
    eventId: event._id,
    kind: event.kind,
    source: event.source,
    detail: event.detail,
    blockedUntil: event.blockedUntil,
    at: event.at,
  };
  const queued = await queueStandalone(ctx, config, notice, { securityEventId: event._id });
  if (queued === 0) log("warn", "alert.no_destinations", { correlationId: event._id, type: "security.blocked" });
  return queued;
}

/**
 * Queues an operator notice that belongs to no incident (a checkout over quota) to every
 * destination, sent as soon as this transaction commits; retried like any alert. The caller makes
 * it once per event (event processing runs once). Returns how many rows it queued.
 */
export async function queueQuotaNotice(ctx: MutationCtx, config: Config, notice: QuotaNotice): Promise<number> {
  const queued = await queueStandalone(ctx, config, notice, { correlationId: notice.eventId });
  log(queued === 0 ? "warn" : "info", queued === 0 ? "alert.no_destinations" : "alert.quota", {
    correlationId: notice.eventId,
    type: notice.type,
    quota: notice.quota,
    deliveries: queued,
  });
  return queued;
}

/**
 * Queues the one alert of a deploy-key rotation's failure streak (deployKeys.ts) to every
 * destination, in the transaction that records the failure that reached the threshold.
 */
export async function queueDeployKeyNotice(
  ctx: MutationCtx,
  config: Config,
  instanceId: Id<"instances">,
  notice: Omit<DeployKeyNotice, "type" | "instanceId">,
): Promise<number> {
  const correlationId = `deploy-key:${instanceId}`;
  const queued = await queueStandalone(ctx, config, { type: "deployKey.rotation_failed", instanceId, ...notice }, { instanceId, correlationId });
  if (queued === 0) log("warn", "alert.no_destinations", { correlationId, type: "deployKey.rotation_failed" });
  return queued;
}

/** Appends a note, keeping the first and the latest NOTIFICATIONS_KEPT - 1. */
export function withNotification(notes: Notification[], note: Notification): Notification[] {
  const all = [...notes, note];
  return all.length <= NOTIFICATIONS_KEPT ? all : [all[0], ...all.slice(all.length - NOTIFICATIONS_KEPT + 1)];
}

// ---------------------------------------------------------------------------------------------
// Maintenance windows.

/** The window covering the instance (or the whole fleet) at `now` that lasts longest, if any. */
export async function coveringWindow(ctx: QueryCtx, instanceId: Id<"instances">, now: number): Promise<Window | null> {
  let best: Window | null = null;
  for (const scope of [instanceId, undefined]) {
    const windows = await ctx.db
      .query("maintenanceWindows")
      .withIndex("by_instanceId_and_until", (q) => q.eq("instanceId", scope).gt("until", now))
      .take(WINDOWS_READ);
    for (const window of windows) {
      if (window.from <= now && (best === null || window.until > best.until)) best = window;
    }
  }
  return best;
}

export const vMaintenanceView = v.object({
  maintenanceId: v.id("maintenanceWindows"),
  instanceId: v.optional(v.id("instances")),
  from: v.number(),
  until: v.number(),
  reason: v.string(),
  createdAt: v.number(),
});
export type MaintenanceView = Infer<typeof vMaintenanceView>;

const maintenanceView = (w: Window): MaintenanceView => ({
  maintenanceId: w._id,
  ...(w.instanceId !== undefined ? { instanceId: w.instanceId } : {}),
  from: w.from,
  until: w.until,
  reason: w.reason,
  createdAt: w.createdAt,
});

export const REASON_MAX = 500;

export const vCreateWindowResult = v.union(
  v.object({ kind: v.literal("created"), window: vMaintenanceView }),
  v.object({ kind: v.literal("refused"), code: v.union(v.literal("BAD_REQUEST"), v.literal("NOT_FOUND")), message: v.string() }),
);
export type CreateWindowResult = Infer<typeof vCreateWindowResult>;

/**
 * Opens a maintenance window over one instance (or, without `instanceId`, the fleet). Alerts and
 * reminders falling inside it wait for its end; checks go on. Audited, refusals too.
 */
export async function createWindow(
  ctx: MutationCtx,
  input: { instanceId?: string; from: number; until: number; reason: string; actor: string },
): Promise<CreateWindowResult> {
  const now = Date.now();
  const reason = input.reason.trim();
  const refuse = async (code: "BAD_REQUEST" | "NOT_FOUND", message: string): Promise<CreateWindowResult> => {
    await appendAudit(ctx, { actor: input.actor, action: "maintenance.refused", detail: message.slice(0, 200) });
    return { kind: "refused", code, message };
  };
  if (!Number.isFinite(input.from) || !Number.isFinite(input.until)) return refuse("BAD_REQUEST", "from and until must be times");
  if (input.until <= input.from) return refuse("BAD_REQUEST", "until must be after from");
  if (input.until <= now) return refuse("BAD_REQUEST", "until must be in the future");
  if (reason.length < 1 || reason.length > REASON_MAX) return refuse("BAD_REQUEST", `reason must be 1 to ${REASON_MAX} characters`);
  let instanceId: Id<"instances"> | undefined;
  if (input.instanceId !== undefined) {
    const id = ctx.db.normalizeId("instances", input.instanceId);
    if (!id || !(await ctx.db.get("instances", id))) return refuse("NOT_FOUND", `no instance ${input.instanceId.slice(0, 64)}`);
    instanceId = id;
  }
  const fields = { from: input.from, until: input.until, reason, createdAt: now, actor: input.actor };
  const maintenanceId = await ctx.db.insert("maintenanceWindows", instanceId ? { instanceId, ...fields } : fields);
  await appendAudit(ctx, {
    actor: input.actor,
    action: "maintenance.created",
    instanceId,
    detail: `${instanceId ? "instance" : "fleet"} ${new Date(input.from).toISOString()}..${new Date(input.until).toISOString()}`,
  });
  return { kind: "created", window: maintenanceView((await ctx.db.get("maintenanceWindows", maintenanceId))!) };
}

/** Current and upcoming windows and those that ended within LISTED_PAST_MS, by end time; at most WINDOWS_LISTED. */
export async function listWindows(ctx: QueryCtx, now: number): Promise<MaintenanceView[]> {
  const windows = await ctx.db
    .query("maintenanceWindows")
    .withIndex("by_until", (q) => q.gte("until", now - LISTED_PAST_MS))
    .take(WINDOWS_LISTED);
  return windows.map(maintenanceView);
}

// ---------------------------------------------------------------------------------------------
// The alert and its reminders.

export const vFireResult = v.union(
  v.object({ kind: v.literal("alerted"), deliveries: v.number() }),
  v.object({ kind: v.literal("reminded"), deliveries: v.number() }),
  /** A maintenance window covers the instance or the fleet: tried again at its end. */
  v.object({ kind: v.literal("held"), until: v.number() }),
  v.object({ kind: v.literal("skipped"), reason: v.string() }),
);
export type FireResult = Infer<typeof vFireResult>;

async function holdFor(ctx: MutationCtx, incident: Incident, window: Window, now: number, field: "alertDueAt" | "remindAt"): Promise<FireResult> {
  const note: Notification = {
    type: alertTypeFor(incident.severity),
    at: now,
    suppressed: `maintenance ${window._id} until ${new Date(window.until).toISOString()}`,
  };
  await ctx.db.patch("incidents", incident._id, { [field]: window.until, notifications: withNotification(incident.notifications, note) });
  const next = field === "alertDueAt" ? internal.alerts.fireAlert : internal.alerts.fireReminder;
  await ctx.scheduler.runAt(window.until, next, { incidentId: incident._id });
  log("info", "alert.held", { correlationId: threadOf(incident), incidentId: incident._id, instanceId: incident.instanceId, until: window.until, what: field });
  return { kind: "held", until: window.until };
}

/**
 * The incident's one alert, if it is open, not alerted and due: held while a maintenance window
 * covers it, else recorded (alertedAt, a note, the first reminder) and queued to every
 * destination. Anything else changes nothing, so a replay or a second call never alerts twice.
 */
export async function fireDueAlert(ctx: MutationCtx, config: Config, incidentId: Id<"incidents">): Promise<FireResult> {
  const now = Date.now();
  const incident = await ctx.db.get("incidents", incidentId);
  if (!incident) return { kind: "skipped", reason: "gone" };
  if (incident.status !== "open") return { kind: "skipped", reason: "resolved" };
  if (incident.alertedAt !== undefined) return { kind: "skipped", reason: "alerted" };
  if (incident.alertDueAt === undefined || incident.alertDueAt > now) return { kind: "skipped", reason: "not due" };
  const window = await coveringWindow(ctx, incident.instanceId, now);
  if (window) return holdFor(ctx, incident, window, now, "alertDueAt");

  const type = alertTypeFor(incident.severity);
  const remindAt = config.ALERT_REMINDER_MS > 0 ? now + config.ALERT_REMINDER_MS : undefined;
  await ctx.db.patch("incidents", incidentId, {
    alertedAt: now,
    alertDueAt: undefined,
    remindAt,
    notifications: withNotification(incident.notifications, { type, at: now }),
  });
  if (remindAt !== undefined) await ctx.scheduler.runAt(remindAt, internal.alerts.fireReminder, { incidentId });
  const deliveries = await queueNotice(ctx, config, incident, type, now);
  log("warn", "alert.fired", { correlationId: threadOf(incident), incidentId, instanceId: incident.instanceId, type, deliveries });
  return { kind: "alerted", deliveries };
}

/**
 * A reminder (ALERT_REMINDER_MS) of an alerted incident still open, if one is due: the current
 * severity's notice again, then the next one scheduled. Held like the alert during maintenance.
 */
export async function fireDueReminder(ctx: MutationCtx, config: Config, incidentId: Id<"incidents">): Promise<FireResult> {
  const now = Date.now();
  const incident = await ctx.db.get("incidents", incidentId);
  if (!incident || incident.status !== "open" || incident.alertedAt === undefined) return { kind: "skipped", reason: "not open" };
  if (incident.remindAt === undefined || incident.remindAt > now) return { kind: "skipped", reason: "not due" };
  if (config.ALERT_REMINDER_MS === 0) {
    await ctx.db.patch("incidents", incidentId, { remindAt: undefined });
    return { kind: "skipped", reason: "reminders off" };
  }
  const window = await coveringWindow(ctx, incident.instanceId, now);
  if (window) return holdFor(ctx, incident, window, now, "remindAt");

  const type = alertTypeFor(incident.severity);
  const remindAt = now + config.ALERT_REMINDER_MS;
  await ctx.db.patch("incidents", incidentId, { remindAt, notifications: withNotification(incident.notifications, { type, at: now }) });
  await ctx.scheduler.runAt(remindAt, internal.alerts.fireReminder, { incidentId });
  const deliveries = await queueNotice(ctx, config, incident, type, now);
  log("warn", "alert.reminded", { correlationId: threadOf(incident), incidentId, instanceId: incident.instanceId, type, deliveries });
  return { kind: "reminded", deliveries };
}

// ---------------------------------------------------------------------------------------------
// Sending: claim, record, sweep.

export const vAlertClaim = v.union(
  v.object({
    kind: v.literal("claimed"),
    deliveryId: v.id("alertDeliveries"),
    token: v.string(),
    attempt: v.number(),
    /** Absent on a security alert or an operator notice. */
    incidentId: v.optional(v.id("incidents")),
    /** The incident, the security event, or an operator notice's Stripe event: the logs' correlation id. */
    correlationId: v.string(),
    type: vAlertType,
    channel: vAlertChannel,
    /** The email address (email), the URL's host (webhook). */
    destination: v.string(),
    body: v.string(),
  }),
  /** Nothing to send now: no such row, already delivered or failed, leased, waiting out its backoff, or behind an older notice. */
  v.object({ kind: v.literal("none"), reason: v.union(v.literal("gone"), v.literal("done"), v.literal("busy"), v.literal("waiting"), v.literal("behind")) }),
  /** Past its 24 h: given up. */
  v.object({ kind: v.literal("expired") }),
);
export type AlertClaim = Infer<typeof vAlertClaim>;

/** An older notice of the same incident to the same destination still pending, if any. */
async function olderPending(ctx: QueryCtx, row: Delivery): Promise<Delivery | null> {
  // Security alerts and operator notices stand alone: nothing orders them.
  if (row.incidentId === undefined) return null;
  const older = await ctx.db
    .query("alertDeliveries")
    .withIndex("by_incidentId", (q) => q.eq("incidentId", row.incidentId).lt("_creationTime", row._creationTime))
    .order("desc")
    .take(SIBLINGS_READ);
  return older.find((o) => o.status === "pending" && o.channel === row.channel && o.destination === row.destination) ?? null;
}

/** When a notice ends (delivered or failed), the next one to the same destination goes at once. */
async function kickNextInLine(ctx: MutationCtx, row: Delivery, now: number): Promise<void> {
  if (row.incidentId === undefined) return;
  const younger = await ctx.db
    .query("alertDeliveries")
    .withIndex("by_incidentId", (q) => q.eq("incidentId", row.incidentId).gt("_creationTime", row._creationTime))
    .take(SIBLINGS_READ);
  const next = younger.find((y) => y.status === "pending" && y.channel === row.channel && y.destination === row.destination);
  if (!next || (next.inFlight && next.inFlight.until > now)) return;
  await ctx.db.patch("alertDeliveries", next._id, { nextAttemptAt: now });
  await scheduleSend(ctx, next._id);
}

async function giveUp(ctx: MutationCtx, row: Delivery, patch: Partial<Delivery>, now: number): Promise<void> {
  await ctx.db.patch("alertDeliveries", row._id, { ...patch, status: "failed", inFlight: undefined });
  const attempts = patch.attempts ?? row.attempts;
  await appendAudit(ctx, {
    actor: ALERTS_ACTOR,
    action: "alert.delivery_failed",
    instanceId: row.instanceId,
    attempt: attempts,
    detail: `${row.type} for ${row.incidentId !== undefined ? `incident ${row.incidentId}` : row.securityEventId !== undefined ? `security event ${row.securityEventId}` : `event ${row.correlationId}`} by ${row.channel}: ${patch.lastError ?? row.lastError ?? "no answer"}`.slice(0, 500),
  });
  log("warn", "alert.delivery_failed", { correlationId: row.incidentId ?? row.securityEventId ?? row.correlationId ?? row._id, deliveryId: row._id, channel: row.channel, type: row.type, attempts });
  await kickNextInLine(ctx, row, now);
}

/** Leases a due delivery for one send (its `nextAttemptAt` moves to the lease's end), or says why not. */
export async function claimDelivery(ctx: MutationCtx, config: Config, deliveryId: Id<"alertDeliveries">): Promise<AlertClaim> {
  const now = Date.now();
  const row = await ctx.db.get("alertDeliveries", deliveryId);
  if (!row) return { kind: "none", reason: "gone" };
  if (row.status !== "pending") return { kind: "none", reason: "done" };
  if (row.inFlight && row.inFlight.until > now) return { kind: "none", reason: "busy" };
  if (row.nextAttemptAt > now) return { kind: "none", reason: "waiting" };
  if (now > row.expiresAt) {
    await giveUp(ctx, row, { lastError: `expired after ${row.attempts} attempts (last: ${row.lastError ?? "none"})`.slice(0, 500) }, now);
    return { kind: "expired" };
  }
  const older = await olderPending(ctx, row);
  if (older) {
    await ctx.db.patch("alertDeliveries", row._id, { nextAttemptAt: Math.max(older.nextAttemptAt, now + BEHIND_RECHECK_MS) });
    return { kind: "none", reason: "behind" };
  }
  const token = crypto.randomUUID();
  const until = now + leaseMs(config);
  await ctx.db.patch("alertDeliveries", row._id, { inFlight: { token, until }, nextAttemptAt: until });
  return {
    kind: "claimed",
    deliveryId: row._id,
    token,
    attempt: row.attempts + 1,
    ...(row.incidentId !== undefined ? { incidentId: row.incidentId } : {}),
    correlationId: row.incidentId ?? row.securityEventId ?? row.correlationId ?? row._id,
    type: row.type,
    channel: row.channel,
    destination: row.destination,
    body: row.body,
  };
}

/** What one send came to (never a body, a secret, a URL or an address). */
export const vAlertOutcome = v.union(
  /** The webhook answered with this status. */
  v.object({ kind: v.literal("answered"), status: v.number() }),
  /** The email provider accepted the email. */
  v.object({ kind: v.literal("sent") }),
  v.object({ kind: v.literal("error"), message: v.string(), status: v.optional(v.number()) }),
);
export type AlertOutcome = Infer<typeof vAlertOutcome>;

export const vAlertRecordResult = v.union(
  v.object({ kind: v.literal("delivered") }),
  v.object({ kind: v.literal("retrying"), nextAttemptAt: v.number() }),
  v.object({ kind: v.literal("failed") }),
  /** Its lease was taken over (or it ended meanwhile): nothing changed. */
  v.object({ kind: v.literal("stale") }),
);
export type AlertRecordResult = Infer<typeof vAlertRecordResult>;

/**
 * Records one send under its lease. 2xx (or an accepted email): delivered. Anything else: tried
 * again after DELIVERY_RETRY's backoff, never later than its expiry, where a failure gives up.
 */
export async function recordAttempt(
  ctx: MutationCtx,
  deliveryId: Id<"alertDeliveries">,
  token: string,
  outcome: AlertOutcome,
  random: () => number = Math.random,
): Promise<AlertRecordResult> {
  const now = Date.now();
  const row = await ctx.db.get("alertDeliveries", deliveryId);
  if (!row || row.status !== "pending" || row.inFlight?.token !== token) return { kind: "stale" };
  const attempts = row.attempts + 1;
  const lastStatus = outcome.kind === "sent" ? undefined : outcome.status;
  const ok = outcome.kind === "sent" || (outcome.kind === "answered" && outcome.status >= 200 && outcome.status < 300);
  if (ok) {
    await ctx.db.patch("alertDeliveries", deliveryId, {
      attempts,
      lastStatus,
      lastError: undefined,
      status: "delivered",
      deliveredAt: now,
      inFlight: undefined,
      nextAttemptAt: now,
    });
    await kickNextInLine(ctx, row, now);
    return { kind: "delivered" };
  }
  const lastError = outcome.kind === "answered" ? `HTTP ${outcome.status}` : outcome.message.slice(0, 500);
  if (now >= row.expiresAt) {
    await giveUp(ctx, row, { attempts, lastStatus, lastError: `gave up after ${attempts} attempts at its expiry (last: ${lastError})`.slice(0, 500) }, now);
    return { kind: "failed" };
  }
  const nextAttemptAt = Math.min(now + backoffDelayMs(DELIVERY_RETRY, attempts, random), row.expiresAt);
  await ctx.db.patch("alertDeliveries", deliveryId, { attempts, lastStatus, lastError, nextAttemptAt, inFlight: undefined });
  await scheduleSend(ctx, deliveryId, nextAttemptAt);
  return { kind: "retrying", nextAttemptAt };
}

export const vSweepResult = v.object({ alerts: v.number(), reminders: v.number(), deliveries: v.number() });
export type SweepResult = Infer<typeof vSweepResult>;

/**
 * The cron backstop: starts up to SWEEP_LIMIT each of the alerts due, the reminders due and the
 * deliveries due (a lost schedule, a send that died holding its lease once the lease lapsed).
 * Each started function re-checks under its own transaction, so starting one twice is harmless.
 */
export async function sweepDue(ctx: MutationCtx, now: number): Promise<SweepResult> {
  const dueAlerts = await ctx.db
    .query("incidents")
    .withIndex("by_alertDueAt", (q) => q.gte("alertDueAt", 0).lte("alertDueAt", now))
    .take(SWEEP_LIMIT);
  for (const incident of dueAlerts) await ctx.scheduler.runAfter(0, internal.alerts.fireAlert, { incidentId: incident._id });
  const dueReminders = await ctx.db
    .query("incidents")
    .withIndex("by_remindAt", (q) => q.gte("remindAt", 0).lte("remindAt", now))
    .take(SWEEP_LIMIT);
  for (const incident of dueReminders) await ctx.scheduler.runAfter(0, internal.alerts.fireReminder, { incidentId: incident._id });
  const dueDeliveries = await ctx.db
    .query("alertDeliveries")
    .withIndex("by_status_and_nextAttemptAt", (q) => q.eq("status", "pending").lte("nextAttemptAt", now))
    .take(SWEEP_LIMIT);
  for (const row of dueDeliveries) await scheduleSend(ctx, row._id);
  return { alerts: dueAlerts.length, reminders: dueReminders.length, deliveries: dueDeliveries.length };
}

// ---------------------------------------------------------------------------------------------
// Retention.

export const vPruneResult = v.object({ deliveries: v.number(), incidents: v.number(), windows: v.number(), more: v.boolean() });
export type PruneResult = Infer<typeof vPruneResult>;

/**
 * One bounded retention pass (HEALTH_RETENTION_MS): deletes up to PRUNE_BATCH each of the
 * delivered or failed notices made before the cutoff, the incidents resolved before it and the
 * maintenance windows that ended before it. Pending notices are left to expire. `more`: call again.
 */
export async function pruneAlertHistory(ctx: MutationCtx, config: Config, now: number): Promise<PruneResult> {
  const cutoff = now - config.HEALTH_RETENTION_MS;
  const oldDeliveries = await ctx.db
    .query("alertDeliveries")
    .withIndex("by_createdAt", (q) => q.lt("createdAt", cutoff))
    .take(PRUNE_BATCH);
  let deliveries = 0;
  for (const row of oldDeliveries) {
    if (row.status === "pending") continue;
    await ctx.db.delete("alertDeliveries", row._id);
    deliveries++;
  }
  const oldIncidents = await ctx.db
    .query("incidents")
    .withIndex("by_status_and_resolvedAt", (q) => q.eq("status", "resolved").lt("resolvedAt", cutoff))
    .take(PRUNE_BATCH);
  for (const incident of oldIncidents) await ctx.db.delete("incidents", incident._id);
  const oldWindows = await ctx.db
    .query("maintenanceWindows")
    .withIndex("by_until", (q) => q.lt("until", cutoff))
    .take(PRUNE_BATCH);
  for (const window of oldWindows) await ctx.db.delete("maintenanceWindows", window._id);
  // A full page of pending notices alone is not "more": they leave the range only by expiring.
  const more = (oldDeliveries.length === PRUNE_BATCH && deliveries > 0) || oldIncidents.length === PRUNE_BATCH || oldWindows.length === PRUNE_BATCH;
  return { deliveries, incidents: oldIncidents.length, windows: oldWindows.length, more };
}
