// Fleet health in live mode, end to end on real timers: an instance provisioned against the local
// provider fakes, then the health cron (runHealthChecks, called often; it checks nobody early)
// probing its site and backend over HTTP on 127.0.0.1. The site answers 503, then the backend
// hangs past HEALTH_PROBE_TIMEOUT_MS: the instance goes down after the failure threshold, one
// signed alert reaches the webhook receiver, and once both answer again it is active after the
// success threshold with one recovery notice.
import { afterEach, beforeEach, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Doc, Id } from "../convex/_generated/dataModel";
import { startAlertReceiver, type AlertReceiver } from "./fakes/alertReceiver";
import { startFakes, type Fakes } from "./fakes";
import { pollUntilSettled, sendCheckout, setupBackend, type TestBackend } from "./harness";

const SECRET = "alert-webhook-secret-0123456789";
let fakes: Fakes;
let receiver: AlertReceiver;

beforeEach(async () => {
  [fakes, receiver] = await Promise.all([startFakes(), startAlertReceiver({ secret: SECRET })]);
});
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all([fakes.close(), receiver.close()]);
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs the health cron every 200 ms until `done` holds for the instance (or the deadline passes). */
async function cronUntil(t: TestBackend, id: Id<"instances">, done: (instance: Doc<"instances">) => boolean, what: string) {
  const deadline = Date.now() + 45_000;
  for (;;) {
    await t.mutation(internal.monitoring.runHealthChecks, {});
    const instance = (await t.run((ctx) => ctx.db.get("instances", id)))!;
    if (done(instance)) return instance;
    if (Date.now() > deadline) throw new Error(`${what}: still ${instance.healthStatus} after 45 s`);
    await sleep(200);
  }
}

test("live probes: a site answering 503 and a backend that hangs make the instance down, with one signed alert and one recovery notice", async () => {
  const t = setupBackend({
    env: {
      ...fakes.env,
      HEALTH_CHECK_INTERVAL_MS: "10000",
      HEALTH_CONFIRM_INTERVAL_MS: "1000",
      HEALTH_PROBE_TIMEOUT_MS: "300",
      ALERT_AFTER_MS: "0",
      ALERT_WEBHOOK_URL: receiver.url,
      ALERT_WEBHOOK_SECRET: SECRET,
    },
  });
  fakes.attach(t);
  const lines: Record<string, unknown>[] = [];
  for (const level of ["info", "warn", "error"] as const) {
    vi.spyOn(console, level).mockImplementation((line: unknown) => {
      if (typeof line === "string" && line.startsWith('{"level":')) lines.push(JSON.parse(line) as Record<string, unknown>);
    });
  }
  const { sessionId, event } = await sendCheckout(t);
  const status = await pollUntilSettled(t, sessionId);
  expect(status.status).toBe("ready");
  const id = status.instanceId as Id<"instances">;
  const { resources } = (await t.run((ctx) => ctx.db.get("instances", id)))!;

  await cronUntil(t, id, (i) => i.healthStatus === "active", "first check");

  fakes.cloudflare.sites.setMode(resources.pagesProjectName!, "down");
  const down = await cronUntil(t, id, (i) => i.healthStatus === "down", "site 503");
  expect(down.unhealthySince).toBeDefined();
  const history = await t.run((ctx) => ctx.db.query("healthChecks").withIndex("by_instanceId_and_at", (q) => q.eq("instanceId", id)).collect());
  const failed = history.filter((h) => h.failing.includes("site"));
  expect(failed.length).toBeGreaterThanOrEqual(1);
  expect(failed.at(-1)!.checks?.site).toMatchObject({ ok: false, status: 503 });

  // Site back, backend hanging: still down (the backend is unreachable), same incident.
  fakes.cloudflare.sites.setMode(resources.pagesProjectName!, "up");
  fakes.convex.backends.setMode(resources.convexDeploymentName!, "hang");
  const deadline = Date.now() + 45_000;
  for (;;) {
    await t.mutation(internal.monitoring.runHealthChecks, {});
    const open = await t.run((ctx) => ctx.db.query("incidents").withIndex("by_instanceId_and_status", (q) => q.eq("instanceId", id).eq("status", "open")).first());
    if (open?.failing.includes("backend") && !open.failing.includes("site")) break;
    if (Date.now() > deadline) throw new Error(`the incident never moved to the backend: ${JSON.stringify(open?.failing)}`);
    await sleep(200);
  }
  expect((await t.run((ctx) => ctx.db.get("instances", id)))!.healthStatus).toBe("down");

  fakes.convex.backends.setMode(resources.convexDeploymentName!, "up");
  await cronUntil(t, id, (i) => i.healthStatus === "active", "recovery");
  for (const until = Date.now() + 10_000; receiver.accepted().length < 2 && Date.now() < until; ) await sleep(100);

  const incidents = await t.run((ctx) => ctx.db.query("incidents").withIndex("by_instanceId_and_status", (q) => q.eq("instanceId", id)).collect());
  expect(incidents).toHaveLength(1);
  expect(incidents[0]).toMatchObject({ status: "resolved", severity: "down" });
  // Every request the receiver got verified against the secret; one alert, one recovery.
  expect(receiver.requests.filter((r) => r.answer === "rejected")).toEqual([]);
  expect(receiver.accepted().map((r) => r.notice?.type)).toEqual(["instance.down", "instance.recovered"]);
  expect(receiver.accepted()[0].notice).toMatchObject({ incidentId: incidents[0]._id, instanceId: id, status: "down" });
  // The recovery notice still names what had failed.
  expect(incidents[0].failing).toEqual(["backend"]);

  // Health keeps the thread of the Stripe event that provisioned the instance.
  const probeFailures = lines.filter((l) => l.event === "health.probe_failed" && l.instanceId === id);
  expect(probeFailures.length).toBeGreaterThanOrEqual(2);
  for (const line of probeFailures) expect(line.correlationId).toBe(event.id);
  for (const name of ["incident.opened", "alert.fired", "incident.resolved"]) {
    expect(lines.filter((l) => l.event === name), name).toEqual([expect.objectContaining({ correlationId: event.id, incidentId: incidents[0]._id })]);
  }
}, 120_000);
