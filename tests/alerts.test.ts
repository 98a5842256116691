// Incident alerts (convex/alerts.ts, model/alerts.ts, model/incidents.ts): one alert per incident
// after ALERT_AFTER_MS, held by maintenance windows, optional reminders, one recovery notice
// only after an alert, delivered to every ALERT_EMAILS address (sandbox Resend) and to a signed
// webhook on 127.0.0.1 (tests/fakes/alertReceiver.ts verifies Brain-Signature with node:crypto),
// retried for 24 h. The engine is simulated by calling openIncident/updateIncident/resolveIncident
// in t.run. Time-driven tests move the fake clock exactly (everything due at each instant runs to
// completion before the clock moves on).
import { createHmac } from "node:crypto";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Doc, Id } from "../convex/_generated/dataModel";
import { alertSignatureHeader } from "../convex/lib/alertSignature";
import { loadConfig } from "../convex/lib/config";
import type { IncidentSeverity } from "../convex/lib/validators";
import { alertEmail, DELIVERY_MAX_AGE_MS } from "../convex/model/alerts";
import { openIncident, resolveIncident, updateIncident } from "../convex/model/incidents";
import { startAlertReceiver, verifyBrainSignature, type AlertReceiver } from "./fakes/alertReceiver";
import { adminHeaders, setupBackend, type TestBackend } from "./harness";

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const SECRET = "alert-webhook-secret-0123456789";
const EMAILS = ["ops@example.com", "oncall@example.com"];
const ALERT_AFTER = 10 * MINUTE;

let receiver: AlertReceiver;

beforeEach(async () => {
  receiver = await startAlertReceiver({ secret: SECRET });
});
afterEach(async () => {
  vi.useRealTimers();
  await receiver.close();
});

function backend(env: Record<string, string> = {}) {
  return setupBackend({
    env: {
      ALERT_EMAILS: EMAILS.join(", "),
      ALERT_WEBHOOK_URL: receiver.url,
      ALERT_WEBHOOK_SECRET: SECRET,
      // The sandbox's write latency is a real sleep; under fake timers it would never end.
      SANDBOX_LATENCY_MS: "0",
      PROVIDER_TIMEOUT_MS: "2000",
      ...env,
    },
  });
}

async function instance(t: TestBackend, plan = "starter"): Promise<Id<"instances">> {
  return t.run(async (ctx) => {
    const customerId = await ctx.db.insert("customers", { email: "tenant@example.com", createdAt: Date.now() });
    return ctx.db.insert("instances", {
      customerId,
      checkoutSessionId: `cs_test_${Math.random().toString(36).slice(2)}`,
      plan,
      status: "active",
      resources: {},
      createdAt: Date.now(),
    });
  });
}

type Opening = { severity?: IncidentSeverity; failing?: string[]; since?: number; plan?: string };

/** What the health engine does when an instance leaves active. */
const open = (t: TestBackend, instanceId: Id<"instances">, o: Opening = {}) =>
  t.run((ctx) =>
    openIncident(ctx, loadConfig(), {
      instanceId,
      plan: o.plan ?? "starter",
      severity: o.severity ?? "down",
      failing: o.failing ?? ["site", "backend"],
      since: o.since ?? Date.now(),
      at: Date.now(),
    }),
  );

const resolve = (t: TestBackend, incidentId: Id<"incidents">, resolution = "recovered") =>
  t.run((ctx) => resolveIncident(ctx, loadConfig(), incidentId, { at: Date.now(), resolution }));

const incidentOf = (t: TestBackend, incidentId: Id<"incidents">) => t.run(async (ctx) => (await ctx.db.get("incidents", incidentId))!);

const deliveries = (t: TestBackend): Promise<Doc<"alertDeliveries">[]> => t.run((ctx) => ctx.db.query("alertDeliveries").collect());

/** The emails the sandbox Resend accepted: one resource per idempotency key (the delivery id). */
const sentEmails = (t: TestBackend) =>
  t.run(async (ctx) =>
    (
      await ctx.db
        .query("sandboxResources")
        .withIndex("by_provider_and_kind_and_name", (q) => q.eq("provider", "resend").eq("kind", "email"))
        .collect()
    ).map((r) => ({ deliveryId: r.name, to: r.attributes.to, subject: r.attributes.subject })),
  );

const webhookTypes = () => receiver.accepted().map((r) => `${String(r.notice?.type)}@${r.at}`);

const pendingScheduled = (t: TestBackend) =>
  t.run(async (ctx) => (await ctx.db.system.query("_scheduled_functions").collect()).filter((f) => f.state.kind === "pending"));

/** Fake timers: runs everything due now (and what it schedules for now) to completion, without moving the clock. */
async function settle(t: TestBackend) {
  for (let round = 0; round < 500; round++) {
    vi.advanceTimersByTime(0);
    await t.finishInProgressScheduledFunctions();
    const due = (await pendingScheduled(t)).filter((f) => f.scheduledTime <= Date.now());
    if (due.length === 0) return;
  }
  throw new Error("scheduled work kept coming");
}

/** Fake timers: moves the clock to `until`, stopping at each scheduled time on the way to run what is due. */
async function advanceTo(t: TestBackend, until: number) {
  await settle(t);
  for (;;) {
    const next = Math.min(...(await pendingScheduled(t)).map((f) => f.scheduledTime));
    const stop = Math.min(next, until);
    if (stop > Date.now()) vi.advanceTimersByTime(Math.ceil(stop - Date.now()));
    await settle(t);
    if (next > until) return;
  }
}

describe("the alert webhook's signature", () => {
  test("Brain-Signature is t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'> and the receiver verifies it with the secret only", async () => {
    const body = JSON.stringify({ type: "instance.down", note: "naïve ✓" });
    const t = 1_700_000_000;
    const header = await alertSignatureHeader(body, SECRET, t + 0.9);
    const hex = createHmac("sha256", SECRET).update(`${t}.${body}`, "utf8").digest("hex");
    expect(header).toBe(`t=${t},v1=${hex}`);
    expect(verifyBrainSignature(body, header, SECRET, t)).toBeNull();
    expect(verifyBrainSignature(body, header, "another-secret-0123456789", t)).toBe("signature does not match");
    expect(verifyBrainSignature(`${body} `, header, SECRET, t)).toBe("signature does not match");
    expect(verifyBrainSignature(body, header, SECRET, t + 301)).toBe("signature too old");
  });

  test("the alert email names the instance and its status in the subject and lists plan, failing checks, since and the incident", () => {
    const body = JSON.stringify({
      type: "instance.down",
      incidentId: "inc1",
      instanceId: "inst1",
      plan: "pro",
      status: "down",
      failing: ["site", "backend"],
      since: Date.UTC(2030, 0, 1, 12, 0),
      at: Date.UTC(2030, 0, 1, 12, 10),
    });
    const email = alertEmail(body);
    expect(email.subject).toBe("[Brain] instance inst1 is down");
    for (const part of ["pro", "site, backend", "2030-01-01T12:00:00.000Z", "inc1"]) {
      expect(email.text).toContain(part);
      expect(email.html).toContain(part);
    }
    const recovered = alertEmail(JSON.stringify({ ...JSON.parse(body), type: "instance.recovered", status: "active", failing: ["<b>"] }));
    expect(recovered.subject).toBe("[Brain] instance inst1 recovered: active");
    expect(recovered.html).toContain("&lt;b&gt;");
  });
});

describe("one alert per incident (fake timers)", () => {
  beforeEach(() => vi.useFakeTimers());

  test("nothing goes out before ALERT_AFTER_MS; then one alert to every address and one signed webhook with the exact body", async () => {
    const t = backend();
    const instanceId = await instance(t, "pro");
    const since = Date.now() - 2 * MINUTE; // failing before the incident was confirmed
    const incidentId = await open(t, instanceId, { since, plan: "pro" });
    const dueAt = since + ALERT_AFTER;
    expect(await incidentOf(t, incidentId)).toMatchObject({ status: "open", alertDueAt: dueAt, notifications: [] });

    await advanceTo(t, dueAt - 1);
    expect(receiver.requests).toEqual([]);
    expect(await deliveries(t)).toEqual([]);
    expect(await sentEmails(t)).toEqual([]);

    await advanceTo(t, dueAt + MINUTE);
    const incident = await incidentOf(t, incidentId);
    expect(incident).toMatchObject({ alertedAt: dueAt, notifications: [{ type: "instance.down", at: dueAt }] });
    expect(incident.alertDueAt).toBeUndefined();
    expect(incident.remindAt).toBeUndefined();

    const [request] = receiver.requests;
    expect(receiver.requests).toHaveLength(1);
    expect(request.answer).toBe("accepted");
    expect(request.body).toBe(
      JSON.stringify({ type: "instance.down", incidentId, instanceId, plan: "pro", status: "down", failing: ["site", "backend"], since, at: dueAt }),
    );
    expect(request.contentType).toBe("application/json");
    expect(request.signature).toMatch(new RegExp(`^t=${Math.floor(dueAt / 1000)},v1=[0-9a-f]{64}$`));

    const rows = await deliveries(t);
    expect(rows).toHaveLength(3);
    expect(rows.every((row) => row.status === "delivered" && row.attempts === 1 && row.deliveredAt === dueAt)).toBe(true);
    const webhook = rows.find((row) => row.channel === "webhook")!;
    expect(request.delivery).toBe(webhook._id);
    expect(webhook).toMatchObject({ destination: new URL(receiver.url).host, lastStatus: 200, type: "instance.down", body: request.body });

    const emails = await sentEmails(t);
    expect(emails.map((e) => e.to).sort()).toEqual([...EMAILS].sort());
    for (const email of emails) {
      expect(email.subject).toBe(`[Brain] instance ${instanceId} is down`);
      expect(rows.find((row) => row._id === email.deliveryId)).toMatchObject({ channel: "email", destination: email.to });
    }
  });

  test("a replayed fireAlert, the cron and a re-opened incident send nothing more", async () => {
    const t = backend();
    const instanceId = await instance(t);
    const incidentId = await open(t, instanceId);
    await advanceTo(t, Date.now() + ALERT_AFTER);
    expect(receiver.requests).toHaveLength(1);

    expect(await t.mutation(internal.alerts.fireAlert, { incidentId })).toEqual({ kind: "skipped", reason: "alerted" });
    expect(await t.mutation(internal.alerts.fireReminder, { incidentId })).toEqual({ kind: "skipped", reason: "not due" });
    expect(await t.mutation(internal.alerts.runDueAlerts, {})).toEqual({ alerts: 0, reminders: 0, deliveries: 0 });
    // The engine replays its round: the same incident, and no second alert.
    expect(await open(t, instanceId)).toBe(incidentId);
    await advanceTo(t, Date.now() + HOUR);

    expect(receiver.requests).toHaveLength(1);
    expect(await deliveries(t)).toHaveLength(3);
    expect((await incidentOf(t, incidentId)).notifications).toHaveLength(1);
  });

  test("the alert reports the worst severity seen; a degraded-only incident alerts as degraded", async () => {
    const t = backend();
    const worse = await instance(t);
    const mild = await instance(t);
    const worseId = await open(t, worse, { severity: "degraded", failing: ["workos"] });
    const mildId = await open(t, mild, { severity: "degraded", failing: ["pages"] });
    await t.run((ctx) => updateIncident(ctx, loadConfig(), worseId, { severity: "down", failing: ["site"], at: Date.now() }));
    await t.run((ctx) => updateIncident(ctx, loadConfig(), worseId, { severity: "degraded", failing: ["workos"], at: Date.now() }));
    expect(await incidentOf(t, worseId)).toMatchObject({ severity: "down", failing: ["workos"] });

    await advanceTo(t, Date.now() + ALERT_AFTER);
    const byIncident = new Map(receiver.accepted().map((r) => [r.notice?.incidentId, r.notice]));
    expect(byIncident.get(worseId)).toMatchObject({ type: "instance.down", status: "down", failing: ["workos"] });
    expect(byIncident.get(mildId)).toMatchObject({ type: "instance.degraded", status: "degraded", failing: ["pages"] });
    const subjects = (await sentEmails(t)).map((e) => e.subject);
    expect(subjects.filter((s) => s === `[Brain] instance ${mild} is degraded`)).toHaveLength(2);
  });

  test("without destinations the alert is still recorded once, and nothing is queued", async () => {
    const t = backend({ ALERT_EMAILS: "", ALERT_WEBHOOK_URL: "", ALERT_WEBHOOK_SECRET: "" });
    const incidentId = await open(t, await instance(t));
    await advanceTo(t, Date.now() + ALERT_AFTER);
    expect((await incidentOf(t, incidentId)).alertedAt).toBe(Date.now());
    expect(await deliveries(t)).toEqual([]);
  });
});

describe("recovery notices (fake timers)", () => {
  beforeEach(() => vi.useFakeTimers());

  test("recovered after an alert: exactly one instance.recovered notice to every destination", async () => {
    const t = backend();
    const instanceId = await instance(t);
    const since = Date.now();
    const incidentId = await open(t, instanceId, { since });
    await advanceTo(t, since + ALERT_AFTER + 5 * MINUTE);
    const resolvedAt = Date.now();
    await t.run((ctx) => resolveIncident(ctx, loadConfig(), incidentId, { at: resolvedAt, resolution: "recovered", failing: ["site"] }));
    await resolve(t, incidentId); // a replayed round
    await advanceTo(t, resolvedAt + HOUR);

    expect(webhookTypes()).toEqual([`instance.down@${since + ALERT_AFTER}`, `instance.recovered@${resolvedAt}`]);
    expect(receiver.accepted()[1].body).toBe(
      JSON.stringify({ type: "instance.recovered", incidentId, instanceId, plan: "starter", status: "active", failing: ["site"], since, at: resolvedAt }),
    );
    const recoveredEmails = (await sentEmails(t)).filter((e) => e.subject.includes("recovered"));
    expect(recoveredEmails.map((e) => e.to).sort()).toEqual([...EMAILS].sort());
    expect(recoveredEmails.every((e) => e.subject === `[Brain] instance ${instanceId} recovered: active`)).toBe(true);
    const incident = await incidentOf(t, incidentId);
    expect(incident).toMatchObject({ status: "resolved", resolvedAt, resolution: "recovered" });
    expect(incident.notifications.map((n) => n.type)).toEqual(["instance.down", "instance.recovered"]);
  });

  test("recovered before its alert was due: nothing is ever sent, and the scheduled alert finds it resolved", async () => {
    const t = backend();
    const incidentId = await open(t, await instance(t));
    await advanceTo(t, Date.now() + 5 * MINUTE);
    await resolve(t, incidentId);
    const resolved = await incidentOf(t, incidentId);
    expect(resolved.alertDueAt).toBeUndefined();
    await advanceTo(t, Date.now() + HOUR);
    expect(receiver.requests).toEqual([]);
    expect(await deliveries(t)).toEqual([]);
    expect(await t.mutation(internal.alerts.fireAlert, { incidentId })).toEqual({ kind: "skipped", reason: "resolved" });
  });

  test("an alerted incident closed for another reason (the instance suspended) sends no recovery notice", async () => {
    const t = backend();
    const incidentId = await open(t, await instance(t));
    await advanceTo(t, Date.now() + ALERT_AFTER);
    await resolve(t, incidentId, "instance suspended");
    await advanceTo(t, Date.now() + HOUR);
    expect(webhookTypes().map((x) => x.split("@")[0])).toEqual(["instance.down"]);
    expect((await deliveries(t)).every((row) => row.type === "instance.down")).toBe(true);
  });
});

describe("maintenance windows (fake timers)", () => {
  beforeEach(() => vi.useFakeTimers());

  const postWindow = (t: TestBackend, body: unknown) =>
    t.fetch("/admin/maintenance", { method: "POST", headers: { ...adminHeaders(), "content-type": "application/json" }, body: JSON.stringify(body) });

  test("a window over the instance holds its alert until the window ends; it goes out then if the incident is still open", async () => {
    const t = backend();
    const instanceId = await instance(t);
    const other = await instance(t);
    const start = Date.now();
    const response = await postWindow(t, { instanceId, from: start, until: start + 30 * MINUTE, reason: "database upgrade" });
    expect(response.status).toBe(201);
    const { maintenanceId } = (await response.json()) as { maintenanceId: string };
    const held = await open(t, instanceId);
    const free = await open(t, other);

    await advanceTo(t, start + 30 * MINUTE - 1);
    expect(receiver.accepted().map((r) => r.notice?.incidentId)).toEqual([free]);
    const holding = await incidentOf(t, held);
    expect(holding.alertedAt).toBeUndefined();
    expect(holding.alertDueAt).toBe(start + 30 * MINUTE);
    expect(holding.notifications).toEqual([
      { type: "instance.down", at: start + ALERT_AFTER, suppressed: `maintenance ${maintenanceId} until ${new Date(start + 30 * MINUTE).toISOString()}` },
    ]);

    await advanceTo(t, start + 31 * MINUTE);
    expect(receiver.accepted().map((r) => `${String(r.notice?.incidentId)}@${r.at}`)).toEqual([
      `${free}@${start + ALERT_AFTER}`,
      `${held}@${start + 30 * MINUTE}`,
    ]);
    expect((await incidentOf(t, held)).alertedAt).toBe(start + 30 * MINUTE);
  });

  test("a fleet window (no instanceId) holds every alert; an incident that recovers inside it never alerts", async () => {
    const t = backend();
    const a = await instance(t);
    const b = await instance(t);
    const start = Date.now();
    const response = await postWindow(t, { from: new Date(start - MINUTE).toISOString(), until: new Date(start + HOUR).toISOString(), reason: "provider migration" });
    expect(response.status).toBe(201);
    expect(await response.json()).not.toHaveProperty("instanceId");
    const stays = await open(t, a);
    const recovers = await open(t, b);
    await advanceTo(t, start + 40 * MINUTE);
    await resolve(t, recovers);
    await advanceTo(t, start + HOUR - 1);
    expect(receiver.requests).toEqual([]);
    expect(await deliveries(t)).toEqual([]);

    await advanceTo(t, start + 2 * HOUR);
    expect(receiver.accepted().map((r) => r.notice?.incidentId)).toEqual([stays]);
    expect(await t.mutation(internal.alerts.fireAlert, { incidentId: recovers })).toEqual({ kind: "skipped", reason: "resolved" });
  });
});

describe("reminders (fake timers)", () => {
  beforeEach(() => vi.useFakeTimers());

  test("every ALERT_REMINDER_MS while open, held by a maintenance window, and none after recovery", async () => {
    const t = backend({ ALERT_REMINDER_MS: String(30 * MINUTE) });
    const instanceId = await instance(t);
    const start = Date.now();
    const incidentId = await open(t, instanceId);
    await advanceTo(t, start + 50 * MINUTE);
    const window = await t.mutation(internal.alerts.createMaintenanceWindow, {
      instanceId,
      from: start + 60 * MINUTE,
      until: start + 75 * MINUTE,
      reason: "restart",
      actor: "test",
    });
    expect(window.kind).toBe("created");
    await advanceTo(t, start + 110 * MINUTE);
    await resolve(t, incidentId);
    await advanceTo(t, start + 5 * HOUR);

    const at = (minutes: number) => start + minutes * MINUTE;
    expect(webhookTypes()).toEqual([
      `instance.down@${at(10)}`,
      `instance.down@${at(40)}`,
      `instance.down@${at(75)}`,
      `instance.down@${at(105)}`,
      `instance.recovered@${at(110)}`,
    ]);
    expect((await sentEmails(t)).filter((e) => e.to === EMAILS[0])).toHaveLength(5);
    const incident = await incidentOf(t, incidentId);
    expect(incident.remindAt).toBeUndefined();
    expect(incident.notifications.filter((n) => n.suppressed !== undefined)).toHaveLength(1);
  });

  test("with ALERT_REMINDER_MS=0 (the default) an open incident alerts once however long it lasts", async () => {
    const t = backend();
    await open(t, await instance(t));
    await advanceTo(t, Date.now() + 6 * HOUR);
    expect(receiver.requests).toHaveLength(1);
  });
});

describe("delivery retries (fake timers, real HTTP on 127.0.0.1)", () => {
  beforeEach(() => vi.useFakeTimers());

  test("a webhook destination down for an hour (refusing, then 503) still receives the alert once it is back", async () => {
    const t = backend({ ALERT_EMAILS: "" });
    const start = Date.now();
    await receiver.setMode("refuse");
    const incidentId = await open(t, await instance(t));
    await advanceTo(t, start + ALERT_AFTER + 30 * MINUTE);
    const [refused] = await deliveries(t);
    expect(refused).toMatchObject({ status: "pending", channel: "webhook" });
    expect(refused.attempts).toBeGreaterThan(3);
    expect(refused.lastStatus).toBeUndefined();
    expect(refused.lastError).toMatch(/fetch failed/);
    expect(refused.lastError).not.toContain(receiver.url);

    await receiver.setMode("down");
    await advanceTo(t, start + ALERT_AFTER + HOUR);
    const [down] = await deliveries(t);
    expect(down).toMatchObject({ status: "pending", lastStatus: 503, lastError: "HTTP 503" });
    expect(receiver.requests.length).toBeGreaterThan(1);
    expect(receiver.accepted()).toEqual([]);
    // Capped backoff: never more than ~12 minutes between tries.
    const tries = receiver.requests.map((r) => r.at);
    for (let i = 1; i < tries.length; i++) expect(tries[i] - tries[i - 1]).toBeLessThanOrEqual(12 * MINUTE);

    await receiver.setMode("up");
    await advanceTo(t, start + ALERT_AFTER + HOUR + 15 * MINUTE);
    expect(receiver.accepted()).toHaveLength(1);
    expect(receiver.accepted()[0].notice).toMatchObject({ type: "instance.down", incidentId, at: start + ALERT_AFTER });
    const [delivered] = await deliveries(t);
    expect(delivered).toMatchObject({ status: "delivered", lastStatus: 200 });
    expect(delivered.attempts).toBe(receiver.requests.length + (refused.attempts ?? 0));
    // Each attempt is signed afresh: the receiver accepted a signature made at its own time.
    expect(receiver.accepted()[0].signature).toMatch(new RegExp(`^t=${Math.floor(receiver.accepted()[0].at / 1000)},`));
    await advanceTo(t, Date.now() + DAY);
    expect(receiver.accepted()).toHaveLength(1);
  });

  test("a recovery made while the alert is still being retried arrives after it", async () => {
    const t = backend({ ALERT_EMAILS: "" });
    const start = Date.now();
    await receiver.setMode("down");
    const incidentId = await open(t, await instance(t));
    await advanceTo(t, start + ALERT_AFTER + 20 * MINUTE);
    await resolve(t, incidentId);
    await advanceTo(t, start + ALERT_AFTER + 40 * MINUTE);
    expect(receiver.requests.every((r) => r.notice?.type === "instance.down")).toBe(true);
    await receiver.setMode("up");
    await advanceTo(t, start + 2 * HOUR);
    expect(receiver.accepted().map((r) => r.notice?.type)).toEqual(["instance.down", "instance.recovered"]);
  });

  test("a receiver with another secret rejects the signature: recorded (400) and retried, never delivered", async () => {
    const t = backend({ ALERT_EMAILS: "", ALERT_WEBHOOK_SECRET: "not-the-receivers-secret-0000" });
    await open(t, await instance(t));
    await advanceTo(t, Date.now() + ALERT_AFTER + 2 * MINUTE);
    expect(receiver.requests.length).toBeGreaterThan(1);
    expect(receiver.requests.every((r) => r.answer === "rejected" && r.reason === "signature does not match")).toBe(true);
    expect((await deliveries(t))[0]).toMatchObject({ status: "pending", lastStatus: 400, lastError: "HTTP 400" });
  });

  test("a destination down for more than 24 h: the delivery fails at its expiry and is audited", async () => {
    const t = backend({ ALERT_EMAILS: "" });
    await receiver.setMode("down");
    const incidentId = await open(t, await instance(t));
    const alertAt = Date.now() + ALERT_AFTER;
    await advanceTo(t, alertAt + DELIVERY_MAX_AGE_MS + HOUR);
    const [row] = await deliveries(t);
    expect(row).toMatchObject({ status: "failed", lastStatus: 503 });
    expect(row.lastError).toMatch(/^gave up after \d+ attempts at its expiry \(last: HTTP 503\)$/);
    expect(receiver.requests.at(-1)!.at).toBe(alertAt + DELIVERY_MAX_AGE_MS);
    const audit = await t.run((ctx) => ctx.db.query("auditLogs").withIndex("by_action", (q) => q.eq("action", "alert.delivery_failed")).collect());
    expect(audit).toHaveLength(1);
    expect(audit[0].detail).toContain(incidentId);
  });

  test("an email send that fails is retried and each address still gets exactly one email (idempotency key = delivery id)", async () => {
    const t = backend({ ALERT_WEBHOOK_URL: "", ALERT_WEBHOOK_SECRET: "" });
    await t.mutation(internal.sandbox.injectFault, { operation: "resend.sendEmail", times: 3, kind: "transient", message: "503: resend down for ops@example.com" });
    const instanceId = await instance(t);
    await open(t, instanceId);
    await advanceTo(t, Date.now() + ALERT_AFTER + 10 * MINUTE);
    const rows = await deliveries(t);
    expect(rows.map((row) => row.status)).toEqual(["delivered", "delivered"]);
    expect(rows.reduce((sum, row) => sum + row.attempts, 0)).toBe(5);
    const emails = await sentEmails(t);
    expect(emails.map((e) => e.to).sort()).toEqual([...EMAILS].sort());
    expect(emails.map((e) => e.deliveryId).sort()).toEqual(rows.map((row) => row._id).sort());
  });

  test("failed email attempts keep no address in lastError", async () => {
    const t = backend({ ALERT_WEBHOOK_URL: "", ALERT_WEBHOOK_SECRET: "", ALERT_EMAILS: "ops@example.com" });
    await t.mutation(internal.sandbox.injectFault, { operation: "resend.sendEmail", times: 1, kind: "transient", message: "503: cannot reach ops@example.com" });
    await open(t, await instance(t));
    await advanceTo(t, Date.now() + ALERT_AFTER);
    const [row] = await deliveries(t);
    expect(row.attempts).toBe(1);
    expect(row.lastError).toContain("<address>");
    expect(row.lastError).not.toContain("ops@example.com");
  });
});

describe("the cron backstop (fake timers)", () => {
  beforeEach(() => vi.useFakeTimers());

  test("runDueAlerts fires an alert whose schedule was lost and resumes a send that died holding its lease", async () => {
    const t = backend({ ALERT_EMAILS: "" });
    const instanceId = await instance(t);
    // An incident whose scheduled alert never ran (inserted without one).
    const incidentId = await t.run((ctx) =>
      ctx.db.insert("incidents", {
        instanceId,
        plan: "starter",
        status: "open",
        severity: "down",
        failing: ["site"],
        since: Date.now() - HOUR,
        openedAt: Date.now() - HOUR,
        alertDueAt: Date.now() - 50 * MINUTE,
        notifications: [],
      }),
    );
    expect(await t.mutation(internal.alerts.runDueAlerts, {})).toEqual({ alerts: 1, reminders: 0, deliveries: 0 });
    // The alert runs and queues its delivery; a sender claims it and dies before sending.
    await t.mutation(internal.alerts.fireAlert, { incidentId });
    const [row] = await deliveries(t);
    const dead = await t.mutation(internal.alerts.claimAlertDelivery, { deliveryId: row._id });
    expect(dead.kind).toBe("claimed");
    await settle(t);
    expect(receiver.requests).toEqual([]);
    expect(await t.mutation(internal.alerts.runDueAlerts, {})).toEqual({ alerts: 0, reminders: 0, deliveries: 0 });

    vi.advanceTimersByTime(2 * MINUTE + 2 * SECOND); // past the lease (PROVIDER_TIMEOUT_MS + 1 min)
    expect(await t.mutation(internal.alerts.runDueAlerts, {})).toEqual({ alerts: 0, reminders: 0, deliveries: 1 });
    await settle(t);
    expect(receiver.accepted()).toHaveLength(1);
    if (dead.kind !== "claimed") throw new Error("unreachable");
    expect(await t.mutation(internal.alerts.recordAlertAttempt, { deliveryId: row._id, token: dead.token, outcome: { kind: "answered", status: 503 } })).toEqual({
      kind: "stale",
    });
    expect((await deliveries(t))[0]).toMatchObject({ status: "delivered", attempts: 1 });
  });
});

describe("reads and retention", () => {
  beforeEach(() => vi.useFakeTimers());

  test("openIncidentFor returns the open incident's view, or null", async () => {
    const t = backend();
    const instanceId = await instance(t);
    expect(await t.query(internal.alerts.openIncidentFor, { instanceId })).toBeNull();
    const since = Date.now();
    const incidentId = await open(t, instanceId, { severity: "degraded", failing: ["pages"], since });
    expect(await t.query(internal.alerts.openIncidentFor, { instanceId })).toEqual({
      incidentId,
      instanceId,
      status: "open",
      severity: "degraded",
      openedAt: since,
      failing: ["pages"],
      plan: "starter",
      since,
    });
    await resolve(t, incidentId);
    expect(await t.query(internal.alerts.openIncidentFor, { instanceId })).toBeNull();
  });

  test("pruneAlertHistory deletes sent notices, resolved incidents and ended windows past HEALTH_RETENTION_MS, and keeps the rest", async () => {
    const t = backend({ HEALTH_RETENTION_MS: String(DAY), ALERT_EMAILS: "" });
    const old = await open(t, await instance(t));
    const stillOpen = await open(t, await instance(t));
    await t.mutation(internal.alerts.createMaintenanceWindow, { from: Date.now(), until: Date.now() + MINUTE, reason: "short", actor: "test" });
    await advanceTo(t, Date.now() + ALERT_AFTER);
    await resolve(t, old);
    await advanceTo(t, Date.now() + MINUTE);
    expect(await t.mutation(internal.alerts.pruneAlertHistory, {})).toEqual({ deliveries: 0, incidents: 0, windows: 0, more: false });
    vi.advanceTimersByTime(DAY + MINUTE);
    expect(await t.mutation(internal.alerts.pruneAlertHistory, {})).toEqual({ deliveries: 3, incidents: 1, windows: 1, more: false });
    // The open incident stays; every notice older than the retention goes, its alert too.
    const left = await t.run((ctx) => ctx.db.query("incidents").collect());
    expect(left.map((i) => i._id)).toEqual([stillOpen]);
    expect(await deliveries(t)).toEqual([]);
  });
});

describe("admin routes", () => {
  beforeEach(() => vi.useFakeTimers());

  const post = (t: TestBackend, body: string, headers: Record<string, string> = adminHeaders()) =>
    t.fetch("/admin/maintenance", { method: "POST", headers: { ...headers, "content-type": "application/json" }, body });

  test("POST /admin/maintenance: 201 with the window; 400 for bad parameters; 404 for an unknown instance; 401 without the token", async () => {
    const t = backend();
    const instanceId = await instance(t);
    const now = Date.now();
    const created = await post(t, JSON.stringify({ instanceId, from: now, until: now + HOUR, reason: "  upgrade  " }));
    expect(created.status).toBe(201);
    const window = (await created.json()) as Record<string, unknown>;
    expect(window).toEqual({ maintenanceId: expect.any(String), instanceId, from: now, until: now + HOUR, reason: "upgrade" });

    const iso = await post(t, JSON.stringify({ from: "2030-01-01T00:00:00Z", until: "2030-01-01T02:00:00.000+01:00", reason: "fleet" }));
    expect(iso.status).toBe(201);
    expect(await iso.json()).toEqual({ maintenanceId: expect.any(String), from: Date.UTC(2030, 0, 1), until: Date.UTC(2030, 0, 1, 1), reason: "fleet" });

    const bad: [string, RegExp][] = [
      ["{not json", /not JSON/],
      [JSON.stringify({ from: now, until: now - 1, reason: "x" }), /until must be after from/],
      [JSON.stringify({ from: now - 2 * HOUR, until: now - HOUR, reason: "x" }), /until must be in the future/],
      [JSON.stringify({ from: now, until: now + HOUR, reason: " " }), /reason/],
      [JSON.stringify({ from: now, until: now + HOUR, reason: "x".repeat(501) }), /reason/],
      [JSON.stringify({ from: now, until: now + HOUR }), /reason/],
      [JSON.stringify({ from: "tomorrow", until: now + HOUR, reason: "x" }), /from/],
      [JSON.stringify({ from: now, until: now + HOUR, reason: "x", dryRun: true }), /dryRun/],
      [JSON.stringify([]), /body must be/],
    ];
    for (const [body, message] of bad) {
      const response = await post(t, body);
      expect(response.status, body).toBe(400);
      const payload = (await response.json()) as { error: { code: string; message: string } };
      expect(payload.error.code).toBe("BAD_REQUEST");
      expect(payload.error.message).toMatch(message);
    }
    for (const unknown of ["nope", String(await t.run((ctx) => ctx.db.insert("customers", { email: "x@example.com", createdAt: 0 })))]) {
      const response = await post(t, JSON.stringify({ instanceId: unknown, from: now, until: now + HOUR, reason: "x" }));
      expect(response.status).toBe(404);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("NOT_FOUND");
    }
    expect((await post(t, JSON.stringify({ from: now, until: now + HOUR, reason: "x" }), {})).status).toBe(401);
    expect((await t.fetch("/admin/maintenance")).status).toBe(401);
    expect((await t.fetch("/admin/incidents")).status).toBe(401);

    const actions = await t.run(async (ctx) => (await ctx.db.query("auditLogs").collect()).map((row) => row.action));
    expect(actions.filter((a) => a === "maintenance.created")).toHaveLength(2);
    expect(actions.filter((a) => a === "maintenance.refused")).toHaveLength(bad.length + 2);
  });

  test("GET /admin/maintenance lists current, upcoming and recently ended windows", async () => {
    const t = backend();
    const instanceId = await instance(t);
    const start = Date.now();
    const make = (from: number, until: number, reason: string, forInstance = false) =>
      t.mutation(internal.alerts.createMaintenanceWindow, { ...(forInstance ? { instanceId } : {}), from, until, reason, actor: "test" });
    await make(start, start + HOUR, "ended 8 days ago");
    await make(start, start + 2 * DAY, "ended 6 days ago", true);
    vi.setSystemTime(start + 8 * DAY + HOUR);
    const now = Date.now();
    await make(now - HOUR, now + HOUR, "current");
    await make(now + DAY, now + 2 * DAY, "upcoming", true);

    const response = await t.fetch("/admin/maintenance", { headers: adminHeaders() });
    expect(response.status).toBe(200);
    const { windows } = (await response.json()) as { windows: { reason: string; instanceId?: string; createdAt: number }[] };
    expect(windows.map((w) => w.reason)).toEqual(["ended 6 days ago", "current", "upcoming"]);
    expect(windows[0]).toMatchObject({ instanceId, createdAt: start });
    expect(windows[1]).not.toHaveProperty("instanceId");
  });

  test("GET /admin/incidents filters by status and instance, newest first, bounded by limit; 400 for a bad status or limit, 404 for an unknown instance", async () => {
    const t = backend({ ALERT_EMAILS: "", ALERT_WEBHOOK_URL: "", ALERT_WEBHOOK_SECRET: "" });
    const a = await instance(t);
    const b = await instance(t);
    const first = await open(t, a);
    await advanceTo(t, Date.now() + ALERT_AFTER);
    await resolve(t, first);
    vi.advanceTimersByTime(MINUTE);
    const second = await open(t, b, { severity: "degraded", failing: ["pages"] });
    vi.advanceTimersByTime(MINUTE);
    const third = await open(t, a);

    const list = async (query: string) => {
      const response = await t.fetch(`/admin/incidents${query}`, { headers: adminHeaders() });
      return { status: response.status, body: (await response.json()) as { incidents: { incidentId: string }[]; error?: { code: string } } };
    };
    const ids = async (query: string) => (await list(query)).body.incidents.map((i) => i.incidentId);
    expect(await ids("")).toEqual([third, second, first]);
    expect(await ids("?status=open")).toEqual([third, second]);
    expect(await ids("?status=resolved")).toEqual([first]);
    expect(await ids(`?instanceId=${a}`)).toEqual([third, first]);
    expect(await ids(`?instanceId=${a}&status=open`)).toEqual([third]);
    expect(await ids("?limit=2")).toEqual([third, second]);

    const [resolved] = (await list("?status=resolved")).body.incidents;
    expect(resolved).toEqual({
      incidentId: first,
      instanceId: a,
      status: "resolved",
      severity: "down",
      openedAt: expect.any(Number),
      alertedAt: expect.any(Number),
      resolvedAt: expect.any(Number),
      failing: ["site", "backend"],
      plan: "starter",
      since: expect.any(Number),
    });

    for (const query of ["?status=closed", "?limit=0", "?limit=201", "?limit=abc", "?instanceId="]) {
      const { status, body } = await list(query);
      expect(status, query).toBe(400);
      expect(body.error?.code).toBe("BAD_REQUEST");
    }
    expect((await list("?instanceId=nope")).status).toBe(404);
    const audit = await t.run(async (ctx) => (await ctx.db.query("auditLogs").collect()).map((row) => row.action));
    expect(audit.filter((x) => x === "incidents.listed")).toHaveLength(7);
    expect(audit.filter((x) => x === "incidents.refused")).toHaveLength(5);
  });
});
