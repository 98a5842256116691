// Rate limits, suspicious-activity blocks and named admin tokens (issue 11, docs/security.md).
// Each limit is set low here (the harness sets them out of reach for functional tests); the
// source address is the one convex-test reports through withRequestMetadata, as Convex would.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { createHmac } from "node:crypto";
import schema from "../convex/schema";
import { internal } from "../convex/_generated/api";
import { loadConfig } from "../convex/lib/config";
import { svixSignature } from "../convex/lib/svix";
import { matchAdminToken } from "../convex/security";
import { blockDurationMs } from "../convex/model/security";
import {
  adminHeaders,
  checkoutEvent,
  drain,
  sendCheckout,
  setupBackend,
  signedStripeRequest,
  statusOf,
  TEST_ADMIN_API_TOKEN,
  type TestBackend,
} from "./harness";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

const MINUTE = 60_000;
const ATTACKER = "203.0.113.66";
const OTHER = "198.51.100.23";
const OPS_TOKEN = "ops-token-0123456789abcdef";
const CI_TOKEN = "ci-token-fedcba9876543210";

type Backend = Pick<TestBackend, "fetch">;
const from = (t: TestBackend, ip: string) => t.withRequestMetadata({ ip });

/** Rows in every Brain table but the security bookkeeping (securityEvents and its alerts). */
async function stored(t: TestBackend): Promise<Record<string, number>> {
  const tables = Object.keys(schema.tables).filter((name) => name !== "securityEvents" && name !== "alertDeliveries");
  return t.run(async (ctx) => {
    const counts: Record<string, number> = {};
    for (const table of tables) counts[table] = (await ctx.db.query(table as "auditLogs").collect()).length;
    return counts;
  });
}

async function expectRefused(response: Response, status: 429 | 403, code: "RATE_LIMITED" | "BLOCKED") {
  expect(response.status).toBe(status);
  expect(await response.json()).toEqual({ error: { code, message: expect.any(String) } });
  const retryAfter = response.headers.get("retry-after");
  expect(retryAfter).toMatch(/^\d+$/);
  expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  return Number(retryAfter);
}

const badSignature = (backend: Backend) =>
  backend.fetch("/stripe/webhook", signedStripeRequest(checkoutEvent(), { secret: "whsec_not_the_secret" }));

const events = async (t: TestBackend) => {
  const response = await t.fetch("/admin/security-events", { headers: adminHeaders() });
  expect(response.status).toBe(200);
  return ((await response.json()) as { events: { at: number; kind: string; source: string; detail: string }[] }).events;
};

const securityEmails = (t: TestBackend) =>
  t.run(async (ctx) =>
    (
      await ctx.db
        .query("sandboxResources")
        .withIndex("by_provider_and_kind_and_name", (q) => q.eq("provider", "resend").eq("kind", "email"))
        .collect()
    )
      .map((r) => String(r.attributes.subject))
      .filter((subject) => subject.includes("security")),
  );

describe("rate limits: 429 RATE_LIMITED with Retry-After, nothing stored", () => {
  test("POST /stripe/webhook: failed signature checks per address; that address's signed deliveries and other addresses are unaffected", async () => {
    const t = setupBackend({ env: { RATE_LIMIT_WEBHOOK_PER_ADDRESS_PER_MINUTE: "3" } });
    const attacker = from(t, ATTACKER);
    for (let i = 0; i < 3; i++) expect((await badSignature(attacker)).status).toBe(400);
    const before = await stored(t);
    await expectRefused(await badSignature(attacker), 429, "RATE_LIMITED");
    expect(await stored(t)).toEqual(before);
    expect((await badSignature(from(t, OTHER))).status).toBe(400);
    const signed = await attacker.fetch("/stripe/webhook", signedStripeRequest(checkoutEvent()));
    expect(signed.status).toBe(200);
  });

  test("POST /stripe/webhook: verified deliveries globally, whatever their address; the next minute they go through", async () => {
    const t = setupBackend({ env: { RATE_LIMIT_WEBHOOK_GLOBAL_PER_MINUTE: "2" } });
    for (const ip of ["192.0.2.1", "192.0.2.2"]) expect((await from(t, ip).fetch("/stripe/webhook", signedStripeRequest(checkoutEvent()))).status).toBe(200);
    const before = await stored(t);
    const third = checkoutEvent();
    const retryAfter = await expectRefused(await from(t, "192.0.2.3").fetch("/stripe/webhook", signedStripeRequest(third)), 429, "RATE_LIMITED");
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(await stored(t)).toEqual(before);
    vi.advanceTimersByTime(MINUTE);
    // Stripe redelivers it (signed afresh): accepted now.
    expect((await from(t, "192.0.2.3").fetch("/stripe/webhook", signedStripeRequest(third))).status).toBe(200);
  });

  test("GET /status: per address (another address still reads) and per session id (another session still reads)", async () => {
    const t = setupBackend({ env: { RATE_LIMIT_STATUS_PER_ADDRESS_PER_MINUTE: "3", RATE_LIMIT_STATUS_PER_SESSION_PER_MINUTE: "5" } });
    const { sessionId } = await sendCheckout(t);
    const { sessionId: other } = await sendCheckout(t);
    const read = (ip: string, session = sessionId) =>
      from(t, ip).fetch(`/status?session_id=${session}`, { headers: { Accept: "application/json" } });
    for (let i = 0; i < 3; i++) expect((await read(ATTACKER)).status).toBe(200);
    const before = await stored(t);
    await expectRefused(await read(ATTACKER), 429, "RATE_LIMITED");
    expect(await stored(t)).toEqual(before);
    expect((await read(OTHER)).status).toBe(200);
    expect((await read("192.0.2.9")).status).toBe(200); // the session's 5th read
    await expectRefused(await read("192.0.2.10"), 429, "RATE_LIMITED"); // its 6th, from a fresh address
    expect((await read("192.0.2.10", other)).status).toBe(200);
  });

  test("POST /provisioning-callback: verified reports per job; unverified ones per address", async () => {
    const secret = "callback-secret-0123456789abcdef";
    const t = setupBackend({
      env: { PROVISION_CALLBACK_SECRET: secret, RATE_LIMIT_CALLBACK_PER_JOB_PER_MINUTE: "2", RATE_LIMIT_CALLBACK_PER_ADDRESS_PER_MINUTE: "2" },
    });
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const jobId = (await statusOf(t, sessionId)).body.jobId!;
    const post = (body: string, signature?: string, ip = ATTACKER) =>
      from(t, ip).fetch("/provisioning-callback", {
        method: "POST",
        body,
        headers: { "content-type": "application/json", ...(signature ? { "X-Brain-Signature": signature } : {}) },
      });
    const sign = (body: string) => {
      const ts = Math.floor(Date.now() / 1000);
      return `t=${ts},v1=${createHmac("sha256", secret).update(`${ts}.${body}`).digest("hex")}`;
    };
    const report = (n: number) => JSON.stringify({ jobId, step: "deployApp", status: "failed", runId: String(n), message: "x" });
    // The job is done: each verified report is read and answered (409), and counted for the job.
    for (let i = 0; i < 2; i++) expect((await post(report(i), sign(report(i)))).status).toBe(409);
    const before = await stored(t);
    await expectRefused(await post(report(9), sign(report(9))), 429, "RATE_LIMITED");
    expect(await stored(t)).toEqual(before);

    for (let i = 0; i < 2; i++) expect((await post(report(i), undefined, OTHER)).status).toBe(401);
    await expectRefused(await post(report(3), "t=1,v1=" + "0".repeat(64), OTHER), 429, "RATE_LIMITED");
    expect(await stored(t)).toEqual(before);
  });

  test("POST /resend/webhook: unverified requests per address, verified ones globally", async () => {
    const secret = `whsec_${Buffer.from("resend-webhook-test-secret-0123456789").toString("base64")}`;
    const t = setupBackend({ env: { RESEND_WEBHOOK_SECRET: secret, RATE_LIMIT_RESEND_PER_ADDRESS_PER_MINUTE: "2", RATE_LIMIT_RESEND_GLOBAL_PER_MINUTE: "1" } });
    const body = JSON.stringify({ type: "email.delivered", data: { email_id: "re_unknown" } });
    const signed = async (ip: string) => {
      const id = `msg_${Math.random().toString(36).slice(2)}`;
      const ts = Math.floor(Date.now() / 1000);
      return from(t, ip).fetch("/resend/webhook", {
        method: "POST",
        body,
        headers: { "content-type": "application/json", "svix-id": id, "svix-timestamp": String(ts), "svix-signature": await svixSignature(secret, id, ts, body) },
      });
    };
    const unsigned = (ip: string) => from(t, ip).fetch("/resend/webhook", { method: "POST", body, headers: { "content-type": "application/json" } });
    for (let i = 0; i < 2; i++) expect((await unsigned(ATTACKER)).status).toBe(400);
    await expectRefused(await unsigned(ATTACKER), 429, "RATE_LIMITED");
    expect((await signed(ATTACKER)).status).toBe(200);
    const before = await stored(t);
    await expectRefused(await signed(OTHER), 429, "RATE_LIMITED");
    expect(await stored(t)).toEqual(before);
  });

  test("admin routes: calls per token name; another token is not held back", async () => {
    const t = setupBackend({ env: { ADMIN_API_TOKENS: `ops:${OPS_TOKEN},ci:${CI_TOKEN}`, RATE_LIMIT_ADMIN_PER_TOKEN_PER_MINUTE: "2" } });
    for (let i = 0; i < 2; i++) expect((await t.fetch("/admin/circuits", { headers: adminHeaders(OPS_TOKEN) })).status).toBe(200);
    const before = await stored(t);
    await expectRefused(await t.fetch("/admin/circuits", { headers: adminHeaders(OPS_TOKEN) }), 429, "RATE_LIMITED");
    expect(await stored(t)).toEqual(before);
    expect((await t.fetch("/admin/circuits", { headers: adminHeaders(CI_TOKEN) })).status).toBe(200);
  });
});

describe("suspicious activity: recorded, blocked with a growing cool-down, alerted once, listed", () => {
  test("a burst of bad Stripe signatures blocks the address (403 BLOCKED); valid deliveries from it and from elsewhere are still accepted and processed", async () => {
    const t = setupBackend({
      env: { SECURITY_BAD_SIGNATURE_THRESHOLD: "5", RATE_LIMIT_WEBHOOK_PER_ADDRESS_PER_MINUTE: "3", ALERT_EMAILS: "ops@example.com" },
    });
    const attacker = from(t, ATTACKER);
    const codes: number[] = [];
    for (let i = 0; i < 12; i++) codes.push((await badSignature(attacker)).status);
    expect(codes.slice(0, 3)).toEqual([400, 400, 400]);
    expect(codes.slice(3, 5)).toEqual([429, 429]);
    expect(codes.slice(5)).toEqual(Array(7).fill(403));
    const retryAfter = await expectRefused(await badSignature(attacker), 403, "BLOCKED");
    expect(retryAfter).toBe(15 * 60);

    // Stripe's real deliveries, from the blocked address and from another, during the attack.
    const fromAttacker = checkoutEvent();
    const fromStripe = checkoutEvent();
    const a = await attacker.fetch("/stripe/webhook", signedStripeRequest(fromAttacker));
    const b = await from(t, OTHER).fetch("/stripe/webhook", signedStripeRequest(fromStripe));
    expect([a.status, b.status]).toEqual([200, 200]);
    expect((await a.json()) as unknown).toEqual({ received: true, duplicate: false });
    await drain(t);
    for (const event of [fromAttacker, fromStripe]) {
      expect((await statusOf(from(t, OTHER) as TestBackend, event.data.object.id)).body.status).toBe("ready");
    }

    const listed = await events(t);
    expect(listed).toEqual([{ at: expect.any(Number), kind: "bad_signatures", source: ATTACKER, detail: expect.stringContaining("blocked for 15 min") }]);
    expect(await securityEmails(t)).toEqual([`[Brain] security: ${ATTACKER} blocked (bad_signatures)`]);
  });

  test("enumerating status session ids blocks the address, for every session, while other addresses read theirs", async () => {
    const t = setupBackend({ env: { SECURITY_UNKNOWN_SESSION_THRESHOLD: "3" } });
    const { sessionId } = await sendCheckout(t);
    const read = (ip: string, session: string) => from(t, ip).fetch(`/status?session_id=${session}`, { headers: { Accept: "application/json" } });
    for (let i = 0; i < 3; i++) expect((await read(ATTACKER, `cs_guess_${i}`)).status).toBe(404);
    await expectRefused(await read(ATTACKER, "cs_guess_3"), 403, "BLOCKED");
    const before = await stored(t);
    await expectRefused(await read(ATTACKER, sessionId), 403, "BLOCKED");
    expect(await stored(t)).toEqual(before);
    expect((await read(OTHER, sessionId)).status).toBe(200);
    expect(await events(t)).toEqual([expect.objectContaining({ kind: "session_enumeration", source: ATTACKER })]);
  });

  test("repeated admin failures block that address only; the real admin still gets in, from it too; the cool-down doubles on repeat; one alert per block", async () => {
    const t = setupBackend({ env: { SECURITY_ADMIN_FAILURE_THRESHOLD: "3", ALERT_EMAILS: "ops@example.com" } });
    const attacker = from(t, ATTACKER);
    const guess = () => attacker.fetch("/admin/circuits", { headers: adminHeaders("guess-guess-guess-guess") });
    const tripOnce = async () => {
      for (let i = 0; i < 3; i++) expect((await guess()).status).toBe(401);
      return expectRefused(await guess(), 403, "BLOCKED");
    };
    expect(await tripOnce()).toBe(15 * 60);
    const before = await stored(t);
    await expectRefused(await guess(), 403, "BLOCKED");
    expect(await stored(t)).toEqual(before);
    expect((await from(t, OTHER).fetch("/admin/circuits", { headers: adminHeaders("typo-typo-typo-typo") })).status).toBe(401);
    expect((await attacker.fetch("/admin/circuits", { headers: adminHeaders() })).status).toBe(200);
    expect((await from(t, OTHER).fetch("/admin/circuits", { headers: adminHeaders() })).status).toBe(200);

    // After the cool-down, the next burst blocks for twice as long, then four times.
    vi.advanceTimersByTime(15 * MINUTE + 1000);
    expect(await tripOnce()).toBe(30 * 60);
    vi.advanceTimersByTime(30 * MINUTE + 1000);
    expect(await tripOnce()).toBe(60 * 60);

    const listed = await events(t);
    expect(listed.map((e) => [e.kind, e.source])).toEqual(Array(3).fill(["admin_auth_failures", ATTACKER]));
    expect(listed[0].detail).toContain("blocked for 60 min (block 3 in a row)");
    expect(listed[0].at).toBeGreaterThan(listed[1].at);
    await drain(t);
    expect(await securityEmails(t)).toHaveLength(3);
  });

  test("the cool-down is capped by SECURITY_BLOCK_MAX_MS, and a source quiet that long starts again from SECURITY_BLOCK_MS", () => {
    const config = loadConfig({ SECURITY_BLOCK_MS: "60000", SECURITY_BLOCK_MAX_MS: "300000" });
    expect([1, 2, 3, 4, 5, 50].map((strike) => blockDurationMs(config, strike))).toEqual([60_000, 120_000, 240_000, 300_000, 300_000, 300_000]);
  });

  test("the source is the address Convex reports, never X-Forwarded-For; without one, all such requests share the key \"unknown\"", async () => {
    const t = setupBackend({ env: { SECURITY_ADMIN_FAILURE_THRESHOLD: "2" } });
    const guess = (backend: Backend, forwarded: string) =>
      backend.fetch("/admin/circuits", { headers: { ...adminHeaders("guess-guess-guess-guess"), "X-Forwarded-For": forwarded } });
    expect((await guess(from(t, ATTACKER), "192.0.2.1")).status).toBe(401);
    expect((await guess(from(t, ATTACKER), "192.0.2.2")).status).toBe(401);
    expect((await guess(from(t, ATTACKER), "192.0.2.3")).status).toBe(403);
    for (const forwarded of ["192.0.2.4", "192.0.2.5"]) expect((await guess(t, forwarded)).status).toBe(401);
    expect((await guess(t, "192.0.2.6")).status).toBe(403);
    expect((await events(t)).map((e) => e.source)).toEqual(["unknown", ATTACKER]);
  });

  test("GET /admin/security-events needs the admin token and a sane limit", async () => {
    const t = setupBackend();
    expect((await t.fetch("/admin/security-events")).status).toBe(401);
    expect(await events(t)).toEqual([]);
    for (const limit of ["0", "501", "x", "1.5"]) {
      const response = await t.fetch(`/admin/security-events?limit=${limit}`, { headers: adminHeaders() });
      expect(response.status, limit).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: "BAD_REQUEST" } });
    }
    expect(await t.query(internal.security.listSecurityEvents, {})).toEqual([]);
  });
});

describe("admin tokens", () => {
  test("ADMIN_API_TOKENS names several tokens and wins over ADMIN_API_TOKEN; revoking one leaves the others working; audit rows name the token, never hold it", async () => {
    const t = setupBackend({ env: { ADMIN_API_TOKENS: `ops:${OPS_TOKEN}, ci:${CI_TOKEN}` } });
    expect((await t.fetch("/admin/circuits", { headers: adminHeaders(OPS_TOKEN) })).status).toBe(200);
    expect((await t.fetch("/admin/circuits", { headers: adminHeaders(CI_TOKEN) })).status).toBe(200);
    expect((await t.fetch("/admin/circuits", { headers: adminHeaders(TEST_ADMIN_API_TOKEN) })).status).toBe(401);

    process.env.ADMIN_API_TOKENS = `ci:${CI_TOKEN}`; // ops revoked
    expect((await t.fetch("/admin/circuits", { headers: adminHeaders(OPS_TOKEN) })).status).toBe(401);
    expect((await t.fetch("/admin/circuits", { headers: adminHeaders(CI_TOKEN) })).status).toBe(200);

    const audit = await t.run((ctx) => ctx.db.query("auditLogs").collect());
    const calls = audit.filter((row) => row.action === "admin.call");
    expect(calls.map((row) => [row.token, row.detail])).toEqual([
      ["ops", "GET /admin/circuits: 200"],
      ["ci", "GET /admin/circuits: 200"],
      ["ci", "GET /admin/circuits: 200"],
    ]);
    const failures = audit.filter((row) => row.action === "admin.unauthorized");
    expect(failures).toHaveLength(2);
    for (const row of failures) {
      expect(row.token).toBeUndefined();
      expect(row.detail).toBe("GET /admin/circuits from unknown: 401");
    }
    const text = JSON.stringify(audit);
    for (const secret of [OPS_TOKEN, CI_TOKEN, TEST_ADMIN_API_TOKEN]) expect(text).not.toContain(secret);
  });

  test("ADMIN_API_TOKEN alone is one token named default", async () => {
    const t = setupBackend();
    expect((await t.fetch("/admin/circuits", { headers: adminHeaders() })).status).toBe(200);
    const [row] = await t.run((ctx) => ctx.db.query("auditLogs").withIndex("by_action", (q) => q.eq("action", "admin.call")).collect());
    expect(row).toMatchObject({ actor: "admin-api", token: "default" });
  });

  test("a bad ADMIN_API_TOKENS is a clear configuration error naming the entry, never the token", async () => {
    for (const [value, message] of [
      [`ops:${OPS_TOKEN},ops:${CI_TOKEN}`, "the name ops is used twice"],
      ["ops:short", "the token named ops must be at least 16 characters"],
      [`:${OPS_TOKEN}`, "entry 1 must be name:token"],
      [`${OPS_TOKEN}`, "entry 1 must be name:token"],
    ] as const) {
      let error: unknown;
      try {
        loadConfig({ ADMIN_API_TOKENS: value });
      } catch (caught) {
        error = caught;
      }
      const data = (error as { data?: { code: string; message: string } }).data;
      expect(data?.code).toBe("CONFIG_INVALID");
      expect(data?.message).toContain(`ADMIN_API_TOKENS (${message}`);
      expect(data?.message).not.toContain(OPS_TOKEN);
    }
    const t = setupBackend({ env: { ADMIN_API_TOKENS: "ops:short" } });
    const response = await t.fetch("/admin/circuits", { headers: adminHeaders() });
    expect(response.status).toBe(500);
    expect(await response.json()).toMatchObject({ error: { code: "CONFIG_INVALID" } });
  });

  test("the presented token is compared with every token, and only an exact match names one", async () => {
    const tokens = [
      { name: "a", token: "aaaaaaaaaaaaaaaaaaaa" },
      { name: "b", token: "bbbbbbbbbbbbbbbbbbbb" },
      { name: "c", token: "cccccccccccccccccccc" },
    ];
    const crypto = await import("../convex/lib/crypto");
    const compare = vi.spyOn(crypto, "timingSafeEqual");
    expect(await matchAdminToken(tokens, "aaaaaaaaaaaaaaaaaaaa")).toBe("a");
    expect(compare).toHaveBeenCalledTimes(3);
    expect(await matchAdminToken(tokens, "cccccccccccccccccccc")).toBe("c");
    expect(await matchAdminToken(tokens, "aaaaaaaaaaaaaaaaaaa")).toBeNull();
    expect(await matchAdminToken(tokens, "")).toBeNull();
    compare.mockRestore();
  });
});
