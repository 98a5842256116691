// Brain's structured log over a full live run against the local fakes: two paid checkouts (one
// reaching ready, one failing for good on a permanent 4xx and cleaned up at once), a health round
// and admin calls. Every line Brain writes is one JSON object with its level, event and
// correlation id; a job's lines carry the Stripe event that started it, its cleanup included; and
// no secret from the environment, no tenant secret (plaintext or ciphertext) and no email address
// appears in any line, nor any secret in an audit row or in the answers of the status and admin routes.
import { afterEach, beforeEach, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import { decryptSecret } from "../convex/lib/crypto";
import { SECRET_RESOURCE_FIELDS } from "../convex/model/secrets";
import { startFakes, type Fakes } from "./fakes";
import { adminHeaders, pollUntilSettled, sendCheckout, setupBackend } from "./harness";

let fakes: Fakes;
beforeEach(async () => {
  fakes = await startFakes();
});
afterEach(async () => {
  vi.restoreAllMocks();
  await fakes.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const EMAIL = /[\w.+-]+@[\w-]+(\.[\w-]+)+/;
type Line = { level: string; event: string; correlationId: string } & Record<string, unknown>;

test("every log line is JSON with its event and correlation id, a job's lines carry its Stripe event, and no secret or email address is logged", async () => {
  const raw: string[] = [];
  for (const level of ["log", "info", "warn", "error"] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => void raw.push(args.map(String).join(" ")));
  }
  const env = { ...fakes.env, RETRY_BASE_DELAY_MS: "20", RETRY_MAX_DELAY_MS: "200", RETRY_JITTER: "0", CLEANUP_DELAY_MS: "0" };
  const t = setupBackend({ env });
  fakes.attach(t);

  // One transient WorkOS failure: the step's second attempt is logged as attempt 2.
  fakes.workos.inject({ method: "POST", path: /\/organizations$/, status: 503, times: 1 });
  const ready = await sendCheckout(t, { email: "ada.lovelace@example.com" });
  const readyStatus = await pollUntilSettled(t, ready.sessionId);
  expect(readyStatus.status).toBe("ready");
  // Fails for good at the Pages project's configuration, after the project exists: its cleanup
  // always has a recorded resource to delete, whatever order the parallel steps finish in.
  fakes.cloudflare.inject({ method: "PATCH", path: /\/pages\/projects\/[^/]+$/, status: 400, times: 1 });
  const failed = await sendCheckout(t, { email: "grace.hopper@example.com" });
  const failedStatus = await pollUntilSettled(t, failed.sessionId);
  expect(failedStatus.status).toBe("failed");
  // The failed job's partial resources are deleted at once (CLEANUP_DELAY_MS=0).
  let compensation: string | undefined;
  for (const until = Date.now() + 45_000; Date.now() < until && compensation !== "done"; await sleep(100)) {
    compensation = (await t.run((ctx) => ctx.db.get("provisioningJobs", failedStatus.jobId as Id<"provisioningJobs">)))?.compensationStatus;
  }
  expect(compensation).toBe("done");
  await t.mutation(internal.monitoring.runHealthChecks, {});
  await sleep(500);
  // Cron batches log even when they find nothing to do.
  await t.mutation(internal.provisioning.runWatchdog, {});
  await t.mutation(internal.stripe.reprocessStaleEvents, {});
  expect((await t.fetch("/admin/health", { headers: adminHeaders() })).status).toBe(200);
  expect((await t.fetch("/admin/health")).status).toBe(401);

  const brainLines = raw.filter((line) => line.startsWith('{"level":'));
  expect(brainLines.length).toBeGreaterThan(20);
  const lines = brainLines.map((line) => JSON.parse(line) as Line);
  for (const line of lines) {
    expect(["info", "warn", "error"]).toContain(line.level);
    expect(line.event).toMatch(/^[a-z_]+(\.[a-z_]+)+$/);
    expect(typeof line.correlationId === "string" && line.correlationId.length > 0, JSON.stringify(line)).toBe(true);
  }

  // A job's transitions and its provider calls carry the Stripe event that started it.
  for (const [{ event }, status] of [[ready, readyStatus], [failed, failedStatus]] as const) {
    const transitions = lines.filter((l) => l.event === "job.transition" && l.jobId === status.jobId);
    expect(transitions.length).toBeGreaterThanOrEqual(3);
    for (const line of transitions) expect(line.correlationId).toBe(event.id);
    expect(lines.some((l) => l.event === "provider.call" && l.correlationId === event.id)).toBe(true);
  }
  const failedTransitions = lines.filter((l) => l.event === "job.transition" && l.correlationId === failed.event.id);
  expect(failedTransitions.at(-1)).toMatchObject({ level: "warn", to: "failed" });
  // The cleanup's deletions are logged under the failed job's event, not an id of their own.
  const deletions = lines.filter((l) => l.event === "provider.call" && l.correlationId === failed.event.id && /delete/i.test(String(l.operation)));
  expect(deletions.length).toBeGreaterThanOrEqual(1);

  // A live provider call names its HTTP request (never the query or host), status and attempt.
  const liveCalls = lines.filter((l) => l.event === "provider.call" && l.mode === "live");
  expect(liveCalls.length).toBeGreaterThan(10);
  for (const line of liveCalls) {
    expect(line, JSON.stringify(line)).toMatchObject({ method: expect.stringMatching(/^(GET|POST|PUT|PATCH|DELETE)$/), path: expect.stringMatching(/^\/[^?]*$/), durationMs: expect.any(Number) });
    expect(line.attempt as number).toBeGreaterThanOrEqual(1);
    if (/^\d{3}$/.test(String(line.outcome))) expect(line.status).toBe(Number(line.outcome));
  }
  const createOrg = liveCalls.filter((l) => l.correlationId === ready.event.id && l.method === "POST" && l.path === "/organizations");
  expect(createOrg.map((l) => [l.status, l.attempt])).toEqual([[503, 1], [201, 2]]);
  expect(liveCalls).toContainEqual(
    expect.objectContaining({ correlationId: failed.event.id, provider: "cloudflare", method: "PATCH", path: expect.stringMatching(/\/pages\/projects\/[^/]+$/), status: 400 }),
  );

  // One cron.batch line per cron run, with what it returned.
  const batches = lines.filter((l) => l.event === "cron.batch");
  expect(batches).toContainEqual(expect.objectContaining({ cron: "provisioning.runWatchdog", expired: 0, correlationId: expect.stringMatching(/^cron:provisioning\.runWatchdog:\d+$/) }));
  expect(batches).toContainEqual(expect.objectContaining({ cron: "stripe.reprocessStaleEvents", result: 0 }));
  expect(batches).toContainEqual(expect.objectContaining({ cron: "monitoring.runHealthChecks", enrolledMore: false, claimedMore: false }));

  // An authorized admin call writes one admin.call line; a refused one, admin.unauthorized.
  expect(lines.filter((l) => l.event === "admin.call" && l.route === "/admin/health")).toEqual([
    expect.objectContaining({ level: "info", method: "GET", status: 200, durationMs: expect.any(Number) }),
  ]);
  expect(lines.some((l) => l.event === "admin.unauthorized" && l.path === "/admin/health")).toBe(true);

  // Nothing secret and no address, in any line (Brain's or not).
  const secrets = Object.entries(env)
    .filter(([name, value]) => /SECRET|TOKEN|KEY|PASSWORD/.test(name) && value.length >= 8)
    .map(([, value]) => value);
  expect(secrets.length).toBeGreaterThanOrEqual(5);
  // The tenants' own secrets, in plaintext and as stored (ciphertext), may appear nowhere either.
  const instances = await t.run((ctx) => ctx.db.query("instances").collect());
  const tenantSecrets: string[] = [];
  for (const instance of instances) {
    for (const field of SECRET_RESOURCE_FIELDS) {
      const sealed = instance.resources[field];
      if (typeof sealed !== "string") continue;
      tenantSecrets.push(sealed, await decryptSecret(sealed, (env as Record<string, string>).ENCRYPTION_KEY));
    }
  }
  expect(tenantSecrets.length).toBeGreaterThanOrEqual(2);
  for (const line of raw) {
    for (const secret of [...secrets, ...tenantSecrets]) expect(line.includes(secret), `a secret in: ${line.slice(0, 200)}`).toBe(false);
    expect(line, "a tenant webhook secret").not.toMatch(/whsec_/);
    expect(line, "an email address").not.toMatch(EMAIL);
  }

  // Nor in an audit detail, nor in any answer Brain gives (views, lists, errors).
  const audit = JSON.stringify(await t.run((ctx) => ctx.db.query("auditLogs").collect()));
  const answers: string[] = [audit];
  const jobIds = [readyStatus.jobId, failedStatus.jobId];
  const paths = [
    `/status?session_id=${ready.sessionId}`,
    `/status?session_id=${failed.sessionId}`,
    "/admin/jobs",
    ...jobIds.map((id) => `/admin/jobs/${id}`),
    ...instances.map((i) => `/instance-health/${i._id}`),
    "/admin/health",
    "/admin/metrics",
    "/admin/dead-letter",
    "/admin/security-events",
    "/admin/jobs?cursor=not-a-cursor",
  ];
  for (const path of paths) {
    const answer = await t.fetch(path, { headers: { ...adminHeaders(), Accept: "application/json" } });
    answers.push(`${path} ${answer.status} ${await answer.text()}`);
  }
  for (const answer of answers) {
    for (const secret of [...secrets, ...tenantSecrets]) expect(answer.includes(secret), `a secret in: ${answer.slice(0, 200)}`).toBe(false);
    expect(answer, "a tenant webhook secret").not.toMatch(/whsec_/);
  }
}, 90_000);
