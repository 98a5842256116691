// Deploy-key rotation (convex/deployKeys.ts): create, verify, store, hand over, revoke; every
// failure leaves a working stored key; a run that dies between steps is resumed; operators are
// alerted after DEPLOY_KEY_ROTATION_ALERT_AFTER failures; a provisioning re-run revokes the key it replaces.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import { decryptSecret, sha256Hex } from "../convex/lib/crypto";
import { alertEmail } from "../convex/model/alerts";
import { loadConfig } from "../convex/lib/config";
import { sandboxProviders } from "../convex/providers/sandbox";
import { actionCtxOf, adminHeaders, drain, drainFor, sendCheckout, setupBackend, statusOf, type TestBackend } from "./harness";

beforeEach(() => vi.useFakeTimers());
afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

const DAY = 24 * 60 * 60_000;
const ENCRYPTION_KEY = Buffer.alloc(32, 5).toString("base64");
// No simulated latency: a rotation step called directly (t.action) then needs no timers advanced.
const ENV = { ENCRYPTION_KEY, DEPLOY_KEY_ROTATION_ALERT_AFTER: "2", DEPLOY_KEY_ROTATION_RETRY_MS: "60000", SANDBOX_LATENCY_MS: "0" };

async function activeInstance(t: TestBackend): Promise<Id<"instances">> {
  const { sessionId } = await sendCheckout(t);
  await drain(t);
  const { body } = await statusOf(t, sessionId);
  expect(body.status).toBe("ready");
  return body.instanceId as Id<"instances">;
}

const instanceOf = (t: TestBackend, id: Id<"instances">) => t.run(async (ctx) => (await ctx.db.get("instances", id))!);

/** The plaintext deploy key the instance holds now. */
async function storedKey(t: TestBackend, id: Id<"instances">): Promise<string> {
  return decryptSecret((await instanceOf(t, id)).resources.convexDeployKeyCiphertext!, ENCRYPTION_KEY);
}

/** The sandbox's live deploy keys (their hashes) on the instance's deployment. */
async function liveKeyHashes(t: TestBackend, id: Id<"instances">): Promise<string[]> {
  const deploymentName = (await instanceOf(t, id)).resources.convexDeploymentName!;
  const rows = await t.run(async (ctx) =>
    ctx.db
      .query("sandboxResources")
      .withIndex("by_provider_and_kind_and_name", (q) => q.eq("provider", "convex").eq("kind", "deployKey"))
      .collect(),
  );
  return rows.filter((r) => r.attributes.deploymentName === deploymentName).map((r) => r.name);
}

/** The invariant: the stored key works, and it is the deployment's only live key. */
async function expectExactlyTheStoredKeyWorks(t: TestBackend, id: Id<"instances">) {
  expect(await liveKeyHashes(t, id)).toEqual([await sha256Hex(await storedKey(t, id))]);
}

/** The stored key works (other keys may too, mid-rotation). */
async function expectStoredKeyWorks(t: TestBackend, id: Id<"instances">) {
  expect(await liveKeyHashes(t, id)).toContain(await sha256Hex(await storedKey(t, id)));
}

/** Moves past the instance's due time and runs the cron (and, unless told not to, the rotation it starts). */
async function runCron(t: TestBackend, id: Id<"instances">, options: { drain?: boolean } = {}) {
  const due = (await instanceOf(t, id)).deployKeyDueAt;
  if (due !== undefined && due > Date.now()) vi.setSystemTime(due + 1000);
  const result = await t.mutation(internal.deployKeys.runDeployKeyRotations, {});
  if (options.drain !== false) await drain(t);
  return result;
}

async function injectFault(t: TestBackend, operation: string, kind: "transient" | "permanent", times = 1) {
  await t.mutation(internal.sandbox.injectFault, { operation, kind, times });
}

/** How long after its latest recorded failure the rotation is due again. */
async function retryDelayAfterLastFailure(t: TestBackend, id: Id<"instances">) {
  const rows = await t.query(internal.audit.listForInstance, { instanceId: id });
  const failedAt = Math.max(...rows.filter((row) => row.action === "deployKey.rotation_failed").map((row) => row.at));
  return (await instanceOf(t, id)).deployKeyDueAt! - failedAt;
}

const auditActions = async (t: TestBackend, id: Id<"instances">) =>
  (await t.query(internal.audit.listForInstance, { instanceId: id })).map((row) => row.action);

describe("the rotation cron", () => {
  test("a key younger than DEPLOY_KEY_ROTATION_DAYS is planned, not rotated; once it is that old it is rotated", async () => {
    const t = setupBackend({ env: { ...ENV, DEPLOY_KEY_ROTATION_DAYS: "30" } });
    const id = await activeInstance(t);
    const before = await storedKey(t, id);
    expect(await t.mutation(internal.deployKeys.runDeployKeyRotations, {})).toEqual({ planned: 1, started: 0 });
    const planned = await instanceOf(t, id);
    expect(planned.deployKeyDueAt).toBe(planned.activatedAt! + 30 * DAY);
    expect(await storedKey(t, id)).toBe(before);

    vi.setSystemTime(planned.deployKeyDueAt! + 1000);
    expect(await t.mutation(internal.deployKeys.runDeployKeyRotations, {})).toEqual({ planned: 0, started: 1 });
    await drain(t);
    expect(await storedKey(t, id)).not.toBe(before);
  });

  test("DEPLOY_KEY_ROTATION_BATCH bounds how many rotations one run starts", async () => {
    const t = setupBackend({ env: { ...ENV, DEPLOY_KEY_ROTATION_BATCH: "1" } });
    const a = await activeInstance(t);
    const b = await activeInstance(t);
    await t.mutation(internal.deployKeys.runDeployKeyRotations, {});
    const due = Math.max((await instanceOf(t, a)).deployKeyDueAt!, (await instanceOf(t, b)).deployKeyDueAt!);
    vi.setSystemTime(due + 1000);
    expect((await t.mutation(internal.deployKeys.runDeployKeyRotations, {})).started).toBe(1);
    await drain(t);
    expect((await t.mutation(internal.deployKeys.runDeployKeyRotations, {})).started).toBe(1);
    await drain(t);
    for (const id of [a, b]) expect((await instanceOf(t, id)).deployKeyRotation?.rotatedAt).toBeDefined();
  });
});

describe("a rotation", () => {
  test("creates, verifies and stores a new key, revokes the old one, and plans the next a period later", async () => {
    const t = setupBackend({ env: ENV });
    const id = await activeInstance(t);
    const oldKey = await storedKey(t, id);
    await expectExactlyTheStoredKeyWorks(t, id);
    const lines: string[] = [];
    for (const level of ["info", "warn", "error", "log"] as const) {
      vi.spyOn(console, level).mockImplementation((...args: unknown[]) => void lines.push(args.map(String).join(" ")));
    }

    await runCron(t, id);
    await runCron(t, id);

    const newKey = await storedKey(t, id);
    expect(newKey).not.toBe(oldKey);
    expect(newKey).toMatch(/^prod:sandbox-/);
    await expectExactlyTheStoredKeyWorks(t, id);
    const instance = await instanceOf(t, id);
    expect(instance.deployKeyRotation).toMatchObject({ phase: "idle", failures: 0, rotatedAt: expect.any(Number) });
    expect(instance.deployKeyRotation?.pendingKeyCiphertext).toBeUndefined();
    expect(instance.deployKeyRotation?.previousKeyCiphertext).toBeUndefined();
    expect(instance.deployKeyDueAt).toBe(instance.deployKeyRotation!.rotatedAt! + 30 * DAY);
    expect(await auditActions(t, id)).toEqual(expect.arrayContaining(["deployKey.stored", "deployKey.rotated"]));
    // The next deploy dispatch seals the stored (new) key: that is the workflow's handover.
    expect(instance.resources.convexDeployKeyCiphertext).toMatch(/^v2:default:/);

    // No key, old or new, in any log line, audit detail or the operators' view.
    const audit = JSON.stringify(await t.query(internal.audit.listForInstance, { instanceId: id }));
    const view = JSON.stringify(await t.query(internal.deployKeys.getDeployKeyRotation, { instanceId: id }));
    for (const key of [oldKey, newKey]) {
      for (const text of [...lines, audit, view]) expect(text).not.toContain(key.split("|")[1]);
    }
  });

  test("an instance with a job under way waits, and its rotation runs once the job is done", async () => {
    const t = setupBackend({ env: ENV });
    const id = await activeInstance(t);
    const before = await storedKey(t, id);
    await t.mutation(internal.deployKeys.runDeployKeyRotations, {});
    const job = await t.run(async (ctx) => ctx.db.query("provisioningJobs").withIndex("by_instanceId", (q) => q.eq("instanceId", id)).first());
    await t.run(async (ctx) => ctx.db.patch("provisioningJobs", job!._id, { status: "running" }));
    expect((await runCron(t, id)).started).toBe(0);
    expect(await storedKey(t, id)).toBe(before);
    await t.run(async (ctx) => ctx.db.patch("provisioningJobs", job!._id, { status: "succeeded" }));
    expect((await runCron(t, id)).started).toBe(1);
    expect(await storedKey(t, id)).not.toBe(before);
    await expectExactlyTheStoredKeyWorks(t, id);
  });
});

describe("a failure at any step leaves the old key working, retries with backoff and ends rotated", () => {
  for (const { step, operation, kind, phase } of [
    { step: "create", operation: "convex.createDeployKey", kind: "transient", phase: "creating" },
    { step: "verify (transient)", operation: "convex.verifyDeployKey", kind: "transient", phase: "created" },
    { step: "verify (the key is refused)", operation: "convex.verifyDeployKey", kind: "permanent", phase: "idle" },
    { step: "revoke", operation: "convex.revokeDeployKey", kind: "transient", phase: "stored" },
  ] as const) {
    test(`${step}`, async () => {
      const t = setupBackend({ env: ENV });
      const id = await activeInstance(t);
      const oldKey = await storedKey(t, id);
      await t.mutation(internal.deployKeys.runDeployKeyRotations, {});
      await injectFault(t, operation, kind);

      await runCron(t, id);
      const failed = await instanceOf(t, id);
      expect(failed.deployKeyRotation).toMatchObject({ phase, failures: 1, lastError: expect.stringContaining(kind) });
      expect(failed.deployKeyRotation?.lease).toBeUndefined();
      // The retry waits DEPLOY_KEY_ROTATION_RETRY_MS.
      expect(await retryDelayAfterLastFailure(t, id)).toBe(60_000);
      await expectStoredKeyWorks(t, id);
      if (phase === "stored") {
        // The new key is stored and works; the old one still works until it is revoked.
        expect(await storedKey(t, id)).not.toBe(oldKey);
        expect(await liveKeyHashes(t, id)).toContain(await sha256Hex(oldKey));
      } else {
        expect(await storedKey(t, id)).toBe(oldKey);
      }
      if (step === "verify (the key is refused)") {
        // The refused key was revoked and dropped, not left live.
        expect(failed.deployKeyRotation?.pendingKeyCiphertext).toBeUndefined();
        await expectExactlyTheStoredKeyWorks(t, id);
      }

      await runCron(t, id);
      expect(await storedKey(t, id)).not.toBe(oldKey);
      await expectExactlyTheStoredKeyWorks(t, id);
      expect((await instanceOf(t, id)).deployKeyRotation).toMatchObject({ phase: "idle", failures: 0 });
    });
  }

  test("operators are alerted once after DEPLOY_KEY_ROTATION_ALERT_AFTER consecutive failures; the retry delay doubles", async () => {
    const t = setupBackend({ env: { ...ENV, ALERT_EMAILS: "ops@example.com" } });
    const id = await activeInstance(t);
    await t.mutation(internal.deployKeys.runDeployKeyRotations, {});
    await injectFault(t, "convex.createDeployKey", "transient", 3);
    const errors: string[] = [];
    vi.spyOn(console, "error").mockImplementation((line: unknown) => void errors.push(String(line)));
    const alerts = () => errors.filter((line) => line.includes('"event":"deploy_key.rotation_alert"'));

    await runCron(t, id);
    expect((await instanceOf(t, id)).deployKeyRotation).toMatchObject({ failures: 1 });
    expect((await instanceOf(t, id)).deployKeyRotation?.alertedAt).toBeUndefined();
    expect(alerts()).toHaveLength(0);

    await runCron(t, id);
    const second = await instanceOf(t, id);
    expect(second.deployKeyRotation).toMatchObject({ failures: 2, alertedAt: expect.any(Number) });
    expect(await retryDelayAfterLastFailure(t, id)).toBe(120_000); // 2 × DEPLOY_KEY_ROTATION_RETRY_MS
    expect(alerts()).toHaveLength(1);
    expect(JSON.parse(alerts()[0])).toMatchObject({ level: "error", instanceId: id, failures: 2 });
    expect(await auditActions(t, id)).toContain("deployKey.rotation_alert");
    // Through the alert channel: one notice to each destination, its email naming the instance.
    const notices = await t.run(async (ctx) => ctx.db.query("alertDeliveries").collect());
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({ type: "deployKey.rotation_failed", instanceId: id, channel: "email", destination: "ops@example.com" });
    expect(JSON.parse(notices[0].body)).toMatchObject({ type: "deployKey.rotation_failed", instanceId: id, failures: 2, phase: "creating" });
    expect(alertEmail(notices[0].body).subject).toBe(`[Brain] deploy-key rotation of instance ${id} failing (2 times)`);

    await runCron(t, id);
    expect((await instanceOf(t, id)).deployKeyRotation).toMatchObject({ failures: 3 });
    expect(alerts()).toHaveLength(1); // one alert per failure streak
    expect(await t.run(async (ctx) => ctx.db.query("alertDeliveries").collect())).toHaveLength(1);

    await runCron(t, id); // the fault is spent: this one succeeds and ends the streak
    expect((await instanceOf(t, id)).deployKeyRotation).toMatchObject({ phase: "idle", failures: 0 });
    expect((await instanceOf(t, id)).deployKeyRotation?.alertedAt).toBeUndefined();
    await expectExactlyTheStoredKeyWorks(t, id);
  });
});

describe("a run that dies between steps", () => {
  for (const steps of [1, 2]) {
    test(`after ${steps === 1 ? "creating the key" : "storing it"}: the stored key keeps working and the next run finishes with one live key`, async () => {
      const t = setupBackend({ env: ENV });
      const id = await activeInstance(t);
      const oldKey = await storedKey(t, id);
      await t.mutation(internal.deployKeys.runDeployKeyRotations, {});
      // The cron leases the rotation to a run on the pool; that run does `steps` steps and dies.
      await runCron(t, id, { drain: false });
      const { token } = (await instanceOf(t, id)).deployKeyRotation!.lease!;
      await t.action(internal.deployKeys.rotateDeployKey, { instanceId: id, token, steps });
      const halfway = await instanceOf(t, id);
      expect(halfway.deployKeyRotation?.phase).toBe(steps === 1 ? "created" : "stored");
      expect(halfway.deployKeyRotation?.lease?.token).toBe(token); // still held by the dead run
      await expectStoredKeyWorks(t, id);
      expect(await storedKey(t, id)).toBe(steps === 1 ? oldKey : await storedKey(t, id));
      if (steps === 2) expect(await storedKey(t, id)).not.toBe(oldKey);
      // Nothing else picks it up while the dead run's lease holds.
      expect((await t.mutation(internal.deployKeys.runDeployKeyRotations, {})).started).toBe(0);

      // The lease lapses: the next cron run resumes from the stored phase (the dead run's queued
      // pool item finds the rotation no longer its own and does nothing).
      await runCron(t, id);
      expect(await storedKey(t, id)).not.toBe(oldKey);
      await expectExactlyTheStoredKeyWorks(t, id);
      expect((await instanceOf(t, id)).deployKeyRotation).toMatchObject({ phase: "idle", failures: 0 });
    });
  }
});

describe("a run that dies after Convex made the key and before it was held", () => {
  test("leaves the stored key working; the next run revokes the orphan by its recorded name and finishes with one live key", async () => {
    const t = setupBackend({ env: ENV });
    const id = await activeInstance(t);
    const oldKey = await storedKey(t, id);
    await t.mutation(internal.deployKeys.runDeployKeyRotations, {});
    await runCron(t, id, { drain: false });
    const { token } = (await instanceOf(t, id)).deployKeyRotation!.lease!;
    // What the dead run got done: the name recorded, the key made at Convex, nothing more.
    const name = `brain-${id}-dead`;
    expect(await t.mutation(internal.deployKeys.recordCreating, { instanceId: id, token, pendingKeyName: name })).toBe(true);
    const deploymentName = (await instanceOf(t, id)).resources.convexDeploymentName!;
    const providers = sandboxProviders({ ctx: actionCtxOf(t), config: loadConfig(), correlationId: "dead-run" });
    const orphan = (await providers.convex.createDeployKey({ deploymentName, name })).deployKey;
    expect(await liveKeyHashes(t, id)).toContain(await sha256Hex(orphan));
    await expectStoredKeyWorks(t, id);
    expect(await storedKey(t, id)).toBe(oldKey);

    await runCron(t, id);
    const newKey = await storedKey(t, id);
    expect(newKey).not.toBe(oldKey);
    expect(newKey).not.toBe(orphan);
    await expectExactlyTheStoredKeyWorks(t, id);
    expect((await instanceOf(t, id)).deployKeyRotation).toMatchObject({ phase: "idle", failures: 0 });
  });
});

describe("a provisioning re-run", () => {
  test("revokes the deploy key it replaces", async () => {
    const t = setupBackend({ env: { ...ENV, RETRY_MAX_ATTEMPTS: "1" } });
    await injectFault(t, "configureSite", "permanent");
    const { sessionId } = await sendCheckout(t);
    // Not past CLEANUP_DELAY_MS: the failed job's resources (its key) stay for the re-run.
    await drainFor(t, 30 * 60_000);
    const failed = (await statusOf(t, sessionId)).body;
    expect(failed.status).toBe("failed");
    const id = failed.instanceId as Id<"instances">;
    const firstKey = await storedKey(t, id);
    await expectExactlyTheStoredKeyWorks(t, id);

    // A cleanup that started and is stuck on a failing deletion: the retry runs every step again,
    // convexProject included (decide.ts), from what the instance still holds, its key among it.
    await t.run(async (ctx) => ctx.db.patch("provisioningJobs", failed.jobId as Id<"provisioningJobs">, { compensationStatus: "running" }));
    const retry = await t.fetch(`/retry-provisioning/${failed.jobId}`, { method: "POST", headers: adminHeaders() });
    expect(retry.status).toBe(202);
    await drainFor(t, 30 * 60_000);
    expect((await statusOf(t, sessionId)).body.status).toBe("ready");
    expect(await storedKey(t, id)).not.toBe(firstKey);
    await expectExactlyTheStoredKeyWorks(t, id);
  });
});
