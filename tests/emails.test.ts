// Customer emails (convex/notifications.ts, model/notifications.ts, lib/emailTemplates.ts):
// queued by the job engine once per job and kind, sent on the Resend pool with the same
// idempotency key on every retry, moved on by Resend's svix-signed webhook, and rendered from
// one template module. Sandbox Resend keeps each email as a sandboxResources row named by its
// idempotency key; the live test sends through the real `resend` SDK to tests/fakes/resend.ts.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Doc, Id } from "../convex/_generated/dataModel";
import { loadConfig } from "../convex/lib/config";
import { renderEmail } from "../convex/lib/emailTemplates";
import { svixSignature } from "../convex/lib/svix";
import { applyEvent } from "../convex/model/jobs";
import { queueJobEmails } from "../convex/model/notifications";
import { startResendFake, type ResendFake } from "./fakes/resend";
import { drainFor, pollUntilSettled, sendCheckout, settleCheckout, setupBackend, type TestBackend } from "./harness";

/** The welcome email waits a minute after ready (WELCOME_DELAY_MS): let it come due. */
const settleEmails = (t: TestBackend) => drainFor(t, 5 * 60_000);

const WEBHOOK_SECRET = `whsec_${Buffer.from("resend-webhook-test-secret-0123456789").toString("base64")}`;
const SITE = "https://brain.example.test";

function backend(env: Record<string, string> = {}) {
  return setupBackend({
    env: { RESEND_WEBHOOK_SECRET: WEBHOOK_SECRET, CONVEX_SITE_URL: SITE, SUPPORT_URL: "https://help.example.test/support", ...env },
  });
}

const jobOf = (t: TestBackend, sessionId: string) =>
  t.run(async (ctx) => {
    const instance = (await ctx.db.query("instances").withIndex("by_checkoutSessionId", (q) => q.eq("checkoutSessionId", sessionId)).first())!;
    return (await ctx.db.query("provisioningJobs").collect()).find((j) => j.instanceId === instance._id)!;
  });

const notificationsOf = (t: TestBackend, jobId: Id<"provisioningJobs">): Promise<Doc<"notifications">[]> =>
  t.run((ctx) => ctx.db.query("notifications").withIndex("by_jobId_and_kind", (q) => q.eq("jobId", jobId)).collect());

/** The emails sandbox Resend accepted: one per idempotency key. */
const sandboxEmails = (t: TestBackend) =>
  t.run(async (ctx) =>
    (
      await ctx.db
        .query("sandboxResources")
        .withIndex("by_provider_and_kind_and_name", (q) => q.eq("provider", "resend").eq("kind", "email"))
        .collect()
    ).map((r) => ({ key: r.name, id: r.externalId, to: r.attributes.to, subject: r.attributes.subject })),
  );

async function signedResendEvent(t: TestBackend, event: unknown, options: { secret?: string; timestamp?: number; omit?: string } = {}) {
  const body = JSON.stringify(event);
  const id = `msg_${Math.random().toString(36).slice(2)}`;
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "svix-id": id,
    "svix-timestamp": String(timestamp),
    "svix-signature": await svixSignature(options.secret ?? WEBHOOK_SECRET, id, timestamp, body),
  };
  if (options.omit) delete headers[options.omit];
  return t.fetch("/resend/webhook", { method: "POST", headers, body });
}

describe("emails of a provision job (sandbox, fake timers)", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  test("a ready job sends started, ready and welcome exactly once each, keyed <kind>/<jobId>, and a replayed transition queues nothing", async () => {
    const t = backend();
    const { sessionId } = await sendCheckout(t, { email: "buyer@example.com" });
    expect((await settleCheckout(t, sessionId)).status).toBe("ready");
    await settleEmails(t);
    const job = await jobOf(t, sessionId);
    const rows = await notificationsOf(t, job._id);
    expect(rows.map((r) => [r.kind, r.status, r.idempotencyKey]).sort()).toEqual(
      [
        ["instance_ready", "sent", `instance_ready/${job._id}`],
        ["provisioning_started", "sent", `provisioning_started/${job._id}`],
        ["welcome", "sent", `welcome/${job._id}`],
      ].sort(),
    );
    expect(rows.every((r) => r.attempts === 1 && r.providerMessageId)).toBe(true);
    const emails = await sandboxEmails(t);
    expect(emails.map((e) => e.key).sort()).toEqual(rows.map((r) => r.idempotencyKey).sort());
    expect(emails.every((e) => e.to === "buyer@example.com")).toBe(true);
    // No address on the rows.
    expect(JSON.stringify(rows)).not.toContain("buyer@example.com");

    // Replays: the same transitions again queue nothing more.
    await t.run(async (ctx) => {
      const config = loadConfig();
      const current = (await ctx.db.get("provisioningJobs", job._id))!;
      await queueJobEmails(ctx, config, { status: "queued" }, { ...current, status: "running" });
      await queueJobEmails(ctx, config, { status: "running" }, current);
      expect((await applyEvent(ctx, config, current, { kind: "admit" })).kind).toBe("stale");
    });
    await settleCheckout(t, sessionId);
    expect(await notificationsOf(t, job._id)).toHaveLength(3);
    expect(await sandboxEmails(t)).toHaveLength(3);
  });

  test("the welcome email says how to sign in from the job's WorkOS access: an invitation for a new email, the account a known user has", async () => {
    const t = backend();
    // A WorkOS user the sandbox already knows (say, the customer of an earlier instance).
    await t.run(async (ctx) => {
      const now = Date.now();
      await ctx.db.insert("sandboxResources", {
        provider: "workos",
        kind: "user",
        name: "known@example.com",
        externalId: "user_known",
        attributes: {},
        createdAt: now,
        updatedAt: now,
      });
    });
    const fresh = await sendCheckout(t, { email: "fresh@example.com" });
    const known = await sendCheckout(t, { email: "known@example.com" });
    expect((await settleCheckout(t, fresh.sessionId)).status).toBe("ready");
    expect((await settleCheckout(t, known.sessionId)).status).toBe("ready");
    await settleEmails(t);

    const welcomeOf = async (sessionId: string) => {
      const job = await jobOf(t, sessionId);
      const row = (await notificationsOf(t, job._id)).find((r) => r.kind === "welcome")!;
      expect(row.status).toBe("sent");
      return { resources: job.resources ?? {}, text: row.content!.text };
    };
    const invited = await welcomeOf(fresh.sessionId);
    expect(invited.resources.workosInvitationId).toMatch(/^invitation_/);
    expect(invited.resources.workosUserId).toBeUndefined();
    expect(invited.text).toContain("separate invitation email");
    expect(invited.text).not.toContain("account you already have");

    const existing = await welcomeOf(known.sessionId);
    expect(existing.resources.workosUserId).toBe("user_known");
    expect(existing.resources.workosInvitationId).toBeUndefined();
    expect(existing.text).toContain("account you already have");
    expect(existing.text).not.toContain("separate invitation email");
  });

  test("a retried step sends no failed email; a job that fails for good sends it once, and no ready or welcome", async () => {
    const t = backend();
    await t.mutation(internal.sandbox.injectFault, { operation: "workosOrg", times: 1, kind: "transient" });
    const retried = await sendCheckout(t);
    expect((await settleCheckout(t, retried.sessionId)).status).toBe("ready");
    const retriedJob = await jobOf(t, retried.sessionId);
    expect((await notificationsOf(t, retriedJob._id)).map((r) => r.kind).sort()).toEqual(["instance_ready", "provisioning_started", "welcome"]);

    await t.mutation(internal.sandbox.injectFault, { operation: "pagesProject", times: 1, kind: "permanent" });
    const failed = await sendCheckout(t);
    expect((await settleCheckout(t, failed.sessionId)).status).toBe("failed");
    const failedJob = await jobOf(t, failed.sessionId);
    const rows = await notificationsOf(t, failedJob._id);
    expect(rows.map((r) => [r.kind, r.status]).sort()).toEqual([
      ["provisioning_failed", "sent"],
      ["provisioning_started", "sent"],
    ]);
    const failedEmail = (await t.run((ctx) => ctx.db.get("notifications", rows.find((r) => r.kind === "provisioning_failed")!._id)))!;
    expect(failedEmail.content!.text).toContain("https://help.example.test/support");
    expect(failedEmail.content!.text).toContain(`${SITE}/status?session_id=${failed.sessionId}`);
  });

  test("a Resend outage delays the emails but the job is ready; every retry reuses the idempotency key and one email goes out per kind", async () => {
    const t = backend();
    await t.mutation(internal.sandbox.injectFault, { operation: "resend.sendEmail", times: 6, kind: "transient", message: "503: resend is down" });
    const { sessionId } = await sendCheckout(t, { email: "outage@example.com" });
    expect((await settleCheckout(t, sessionId)).status).toBe("ready");
    const job = await jobOf(t, sessionId);
    expect(job.status).toBe("succeeded");
    const rows = await notificationsOf(t, job._id);
    expect(rows.map((r) => r.status)).toEqual(["sent", "sent", "sent"]);
    expect(rows.reduce((sum, r) => sum + r.attempts, 0)).toBe(3 + 6);
    const emails = await sandboxEmails(t);
    expect(emails).toHaveLength(3);
    expect(emails.map((e) => e.key).sort()).toEqual(rows.map((r) => r.idempotencyKey).sort());
    const audit = await t.run((ctx) => ctx.db.query("auditLogs").withIndex("by_action", (q) => q.eq("action", "email.failed")).collect());
    expect(audit).toHaveLength(0);
  });

  test("a permanent refusal fails the email without retrying and keeps no address in lastError", async () => {
    const t = backend();
    await t.mutation(internal.sandbox.injectFault, { operation: "resend.sendEmail", times: 1, kind: "permanent", message: "422: invalid to address bad@example.com" });
    const { sessionId } = await sendCheckout(t);
    expect((await settleCheckout(t, sessionId)).status).toBe("ready");
    const rows = await notificationsOf(t, (await jobOf(t, sessionId))._id);
    const failed = rows.filter((r) => r.status === "failed");
    expect(failed).toHaveLength(1);
    expect(failed[0].attempts).toBe(1);
    expect(failed[0].lastError).toContain("<address>");
    expect(failed[0].lastError).not.toContain("bad@example.com");
  });
});

describe("Resend's webhook (svix)", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  async function readyJob(t: TestBackend, email: string) {
    const { sessionId } = await sendCheckout(t, { email });
    await settleCheckout(t, sessionId);
    await settleEmails(t);
    const job = await jobOf(t, sessionId);
    return { job, rows: await notificationsOf(t, job._id) };
  }

  test("a signed delivered event marks the email delivered; a replay changes nothing", async () => {
    const t = backend();
    const { job, rows } = await readyJob(t, "events@example.com");
    const ready = rows.find((r) => r.kind === "instance_ready")!;
    const event = { type: "email.delivered", created_at: new Date().toISOString(), data: { email_id: ready.providerMessageId, to: ["events@example.com"] } };
    const response = await signedResendEvent(t, event);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ received: true, kind: "updated", status: "delivered" });
    expect((await signedResendEvent(t, event)).status).toBe(200);
    const after = (await notificationsOf(t, job._id)).find((r) => r.kind === "instance_ready")!;
    expect(after.status).toBe("delivered");
    expect(after.deliveredAt).toBeDefined();
  });

  test("a bad signature answers 401, a missing header 400, an old timestamp 401, and nothing changes", async () => {
    const t = backend();
    const { job, rows } = await readyJob(t, "forged@example.com");
    const ready = rows.find((r) => r.kind === "instance_ready")!;
    const event = { type: "email.bounced", data: { email_id: ready.providerMessageId } };
    const wrongSecret = `whsec_${Buffer.from("another-secret-entirely-000000").toString("base64")}`;
    const forged = await signedResendEvent(t, event, { secret: wrongSecret });
    expect(forged.status).toBe(401);
    expect(await forged.json()).toMatchObject({ error: { code: "UNAUTHORIZED" } });
    expect((await signedResendEvent(t, event, { omit: "svix-signature" })).status).toBe(400);
    expect((await signedResendEvent(t, event, { omit: "svix-id" })).status).toBe(400);
    expect((await signedResendEvent(t, event, { timestamp: Math.floor(Date.now() / 1000) - 3600 })).status).toBe(401);
    expect((await notificationsOf(t, job._id)).map((r) => r.status)).toEqual(rows.map((r) => r.status));
    expect(await t.run((ctx) => ctx.db.query("emailSuppressions").collect())).toHaveLength(0);
  });

  test("a bounce is recorded and stops every later email to that address, without calling Resend", async () => {
    const t = backend();
    const first = await readyJob(t, "bouncy@example.com");
    const started = first.rows.find((r) => r.kind === "provisioning_started")!;
    const response = await signedResendEvent(t, { type: "email.bounced", data: { email_id: started.providerMessageId, bounce: { type: "Permanent", subType: "General" } } });
    expect(await response.json()).toMatchObject({ kind: "updated", status: "bounced" });
    const suppressions = await t.run((ctx) => ctx.db.query("emailSuppressions").collect());
    expect(suppressions).toMatchObject([{ reason: "bounced", recipientHash: started.recipientHash }]);
    expect(JSON.stringify(suppressions)).not.toContain("bouncy@example.com");
    const sentBefore = (await sandboxEmails(t)).length;

    const second = await readyJob(t, "Bouncy@example.com");
    expect(second.job.status).toBe("succeeded");
    expect(second.rows.map((r) => [r.status, r.attempts, r.lastError])).toEqual(
      second.rows.map(() => ["failed", 0, "not sent: the address bounced an earlier email"]),
    );
    expect((await sandboxEmails(t)).length).toBe(sentBefore);
    // A delivered event after the bounce does not move it back.
    await signedResendEvent(t, { type: "email.delivered", data: { email_id: started.providerMessageId } });
    expect((await notificationsOf(t, first.job._id)).find((r) => r.kind === "provisioning_started")!.status).toBe("bounced");
  });
});

describe("templates", () => {
  const urls = {
    plan: "pro",
    customerName: "Ada",
    instanceUrl: "https://brain-abc.pages.dev",
    loginUrl: "https://brain-abc.pages.dev/login",
    statusUrl: "https://brain.example.test/status?session_id=cs_1",
    supportUrl: "https://help.example.test",
    supportEmail: "support@example.test",
  };

  test("started gives the estimate and the status page", () => {
    const email = renderEmail("provisioning_started", { ...urls, etaMinutes: 7, etaMeasured: true });
    expect(email.subject).toBe("We are setting up your instance");
    expect(email.text).toContain("about 7 minutes (based on recent setups)");
    expect(email.text).toContain(urls.statusUrl);
    expect(email.html).toContain(`<a href="${urls.statusUrl.replace("&", "&amp;")}">status page</a>`);
    expect(renderEmail("provisioning_started", { plan: "pro" }).text).toContain("about 10 minutes (a typical setup)");
  });

  test("ready gives the login URL in text and HTML", () => {
    const email = renderEmail("instance_ready", urls);
    expect(email.text).toContain(`Sign in here: ${urls.loginUrl}`);
    expect(email.html).toContain(`<a href="${urls.loginUrl}">`);
    expect(email.text).toContain("Hi Ada,");
  });

  test("failed gives the support link and the status page", () => {
    const email = renderEmail("provisioning_failed", urls);
    expect(email.text).toContain(urls.supportUrl);
    expect(email.text).toContain(urls.statusUrl);
    expect(email.html).toContain(`<a href="mailto:${urls.supportEmail}">`);
  });

  test("welcome says how to sign in (invitation or existing account), with the instance URL and support contacts", () => {
    const invited = renderEmail("welcome", { ...urls, signIn: "invited" });
    expect(invited.text).toContain("separate invitation email");
    expect(invited.text).toContain(urls.instanceUrl);
    expect(invited.text).toContain(urls.supportEmail);
    expect(renderEmail("welcome", { ...urls, signIn: "existing" }).text).toContain("account you already have");
  });

  test("HTML escapes what it is given", () => {
    expect(renderEmail("instance_ready", { ...urls, customerName: "<script>x</script>" }).html).toContain("Hi &lt;script&gt;x&lt;/script&gt;,");
  });
});

describe("live Resend (the resend SDK against tests/fakes/resend.ts, real timers)", () => {
  let fake: ResendFake;
  beforeEach(async () => {
    fake = await startResendFake({ apiKey: "re_fake_key" });
  });
  afterEach(async () => fake.close());

  test("the job's emails go through the SDK with the idempotency key, sender and recipient", async () => {
    const t = backend({
      PROVIDER_MODE_RESEND: "live",
      RESEND_API_KEY: "re_fake_key",
      RESEND_API_URL: fake.url,
      EMAIL_FROM: "Brain <brain@example.com>",
      ENCRYPTION_KEY: Buffer.alloc(32, 7).toString("base64"),
      SANDBOX_LATENCY_MS: "5",
      RATE_LIMIT_RESEND_RPS: "1000",
    });
    const { sessionId } = await sendCheckout(t, { email: "live@example.com" });
    expect((await pollUntilSettled(t, sessionId)).status).toBe("ready");
    const job = await jobOf(t, sessionId);
    const deadline = Date.now() + 10_000;
    while (fake.emails().length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
    const emails = fake.emails();
    expect(emails.map((e) => e.idempotencyKey).sort()).toEqual([`instance_ready/${job._id}`, `provisioning_started/${job._id}`]);
    expect(emails.every((e) => e.from === "Brain <brain@example.com>" && e.to.join() === "live@example.com" && e.text && e.html)).toBe(true);
    // The fake has answered; the send is recorded once the action is back from it.
    let rows = await notificationsOf(t, job._id);
    while (rows.find((r) => r.kind === "instance_ready")?.status === "pending" && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      rows = await notificationsOf(t, job._id);
    }
    const ready = rows.find((r) => r.kind === "instance_ready")!;
    expect(ready.status).toBe("sent");
    expect(emails.map((e) => e.id)).toContain(ready.providerMessageId);
  });
});
