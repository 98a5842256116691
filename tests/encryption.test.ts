// Secrets at rest under key ids (ENCRYPTION_KEYS) and the online, resumable, idempotent
// encryption-key rotation (POST/GET /admin/encryption/rotate): docs/security.md.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import { loadConfig } from "../convex/lib/config";
import {
  ciphertextKeyId,
  decryptSecret,
  encryptionKeys,
  encryptSecret,
  SecretDecryptionError,
  type Keyring,
} from "../convex/lib/crypto";
import { main as rotateEncryptionKey } from "../scripts/rotate-encryption-key";
import { SECRET_RESOURCE_FIELDS } from "../convex/model/secrets";
import { STEPS } from "../convex/registry";
import { adminHeaders, drain, sendCheckout, setupBackend, statusOf, type TestBackend } from "./harness";

const OLD = Buffer.alloc(32, 1).toString("base64");
const NEW = Buffer.alloc(32, 2).toString("base64");
const OTHER = Buffer.alloc(32, 3).toString("base64");

/** A ciphertext as versions before key ids wrote it: `v1:<iv>:<data>` under the single ENCRYPTION_KEY. */
async function legacyCiphertext(plaintext: string, keyBase64: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const key = await crypto.subtle.importKey("raw", Buffer.from(keyBase64, "base64"), "AES-GCM", false, ["encrypt"]);
  const data = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, new TextEncoder().encode(plaintext)));
  return `v1:${Buffer.from(iv).toString("base64")}:${Buffer.from(data).toString("base64")}`;
}

const problem = (env: Record<string, string>) => {
  try {
    loadConfig(env);
    return null;
  } catch (error) {
    return String((error as { data?: { message?: string } }).data?.message ?? error);
  }
};

describe("ENCRYPTION_KEYS", () => {
  test("holds id:base64key entries, the first current; it wins over ENCRYPTION_KEY", () => {
    const config = loadConfig({ ENCRYPTION_KEYS: `k2:${NEW}, default:${OLD}`, ENCRYPTION_KEY: OTHER });
    expect(encryptionKeys(config)).toEqual([
      { id: "k2", key: NEW },
      { id: "default", key: OLD },
    ]);
  });

  test("ENCRYPTION_KEY alone is one key with id default; neither set is the sandbox key under that id", () => {
    expect(encryptionKeys(loadConfig({ ENCRYPTION_KEY: OLD }))).toEqual([{ id: "default", key: OLD }]);
    expect(encryptionKeys(loadConfig({}))).toEqual([{ id: "default", key: expect.any(String) }]);
  });

  test("bad entries are clear configuration errors naming the entry or id, never a key", () => {
    const cases: [string, RegExp][] = [
      [`k1:${OLD},k1:${NEW}`, /key id "k1" appears more than once/],
      [`k1:${Buffer.alloc(16, 1).toString("base64")}`, /key "k1" must be 32 bytes, base64-encoded/],
      [`bad id:${OLD}`, /entry 1 must be id:base64key/],
      [OLD, /entry 1 must be id:base64key/],
      [`k1:${OLD},k:2:${NEW}`, /key "k" must be 32 bytes/],
      [" , ", /must hold at least one id:base64key/],
    ];
    for (const [value, message] of cases) {
      const text = problem({ ENCRYPTION_KEYS: value });
      expect(text).toMatch(/ENCRYPTION_KEYS/);
      expect(text).toMatch(message);
      expect(text).not.toContain(OLD);
      expect(text).not.toContain(NEW);
    }
  });

  test("ENCRYPTION_KEYS alone satisfies live mode's need for a real key", () => {
    const config = loadConfig({ PROVIDER_MODE_RESEND: "live", RESEND_API_KEY: "re_x", EMAIL_FROM: "a@b.co", ENCRYPTION_KEYS: `k1:${NEW}` });
    expect(encryptionKeys(config)[0].id).toBe("k1");
  });
});

describe("ciphertexts name their key", () => {
  const ring: Keyring = [
    { id: "k2", key: NEW },
    { id: "default", key: OLD },
  ];

  test("a secret is sealed under the current key as v2:<id>:…, and opened with the key its id names", async () => {
    const sealed = await encryptSecret("whsec_abc", ring);
    expect(sealed).toMatch(/^v2:k2:/);
    expect(ciphertextKeyId(sealed)).toBe("k2");
    expect(await decryptSecret(sealed, ring)).toBe("whsec_abc");
    const underOld = await encryptSecret("prod:x|y", [{ id: "default", key: OLD }]);
    expect(await decryptSecret(underOld, ring)).toBe("prod:x|y");
  });

  test("ciphertexts written before key ids (v1) open with the key of id default, and with ENCRYPTION_KEY alone", async () => {
    const legacy = await legacyCiphertext("prod:legacy|secret", OLD);
    expect(ciphertextKeyId(legacy)).toBe("default");
    expect(await decryptSecret(legacy, ring)).toBe("prod:legacy|secret");
    expect(await decryptSecret(legacy, encryptionKeys(loadConfig({ ENCRYPTION_KEY: OLD })))).toBe("prod:legacy|secret");
  });

  test("an unknown key id, or a key that does not open it, is a clear error that prints neither the secret nor a key", async () => {
    const sealed = await encryptSecret("whsec_super_secret", [{ id: "gone", key: OTHER }]);
    const unknown = await decryptSecret(sealed, ring).then(() => null, (error: unknown) => error);
    expect(unknown).toBeInstanceOf(SecretDecryptionError);
    expect((unknown as Error).message).toMatch(/encryption key id "gone", which ENCRYPTION_KEYS does not hold/);
    const wrong = await decryptSecret(sealed, [{ id: "gone", key: NEW }]).then(() => null, (error: unknown) => error);
    expect((wrong as Error).message).toMatch(/sealed under encryption key id "gone" could not be opened/);
    for (const error of [unknown, wrong] as Error[]) {
      for (const secret of ["whsec_super_secret", OTHER, NEW, OLD]) expect(`${error.message} ${error.stack}`).not.toContain(secret);
    }
  });
});

describe("rotation of the encryption key", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => {
    vi.restoreAllMocks();
    vi.useRealTimers();
    delete process.env.ENCRYPTION_KEYS;
  });

  /** Every ciphertext stored in instances and jobs (and held by a deploy-key rotation). */
  async function allCiphertexts(t: TestBackend): Promise<string[]> {
    return t.run(async (ctx) => {
      const found: string[] = [];
      const fields = ["convexDeployKeyCiphertext", "tenantWebhookSecretCiphertext", "stripeEndpointSecretCiphertext"] as const;
      for (const instance of await ctx.db.query("instances").collect()) {
        for (const field of fields) if (instance.resources[field]) found.push(instance.resources[field]);
        for (const held of [instance.deployKeyRotation?.pendingKeyCiphertext, instance.deployKeyRotation?.previousKeyCiphertext]) {
          if (held) found.push(held);
        }
      }
      for (const job of await ctx.db.query("provisioningJobs").collect()) {
        for (const field of fields) if (job.resources?.[field]) found.push(job.resources[field]);
      }
      return found;
    });
  }

  async function provisionTwo(t: TestBackend): Promise<Id<"instances">[]> {
    const ids: Id<"instances">[] = [];
    for (let i = 0; i < 2; i++) {
      const { sessionId } = await sendCheckout(t);
      await drain(t);
      ids.push((await statusOf(t, sessionId)).body.instanceId as Id<"instances">);
    }
    // One secret as an old version wrote it (no key id), to be brought under the new key too.
    const legacy = await legacyCiphertext("whsec_legacy_tenant_secret", OLD);
    await t.run(async (ctx) => {
      const instance = (await ctx.db.get("instances", ids[1]))!;
      await ctx.db.patch("instances", ids[1], { resources: { ...instance.resources, stripeEndpointSecretCiphertext: legacy } });
    });
    return ids;
  }

  const post = (t: TestBackend) => t.fetch("/admin/encryption/rotate", { method: "POST", headers: adminHeaders() });
  const get = async (t: TestBackend) => {
    const response = await t.fetch("/admin/encryption/rotate", { headers: adminHeaders() });
    expect(response.status).toBe(200);
    return (await response.json()) as {
      currentKeyId: string;
      keyIds: string[];
      rotation: { keyId: string; status: string; scanned: number; reencrypted: number; error?: string } | null;
    };
  };

  test("re-encrypts every secret under the new key while reads keep working; a second run re-encrypts nothing; the old key can then be dropped", async () => {
    // No simulated latency: the deploy-key rotation below is called directly (t.action).
    const t = setupBackend({ env: { ENCRYPTION_KEY: OLD, SANDBOX_LATENCY_MS: "0" } });
    await provisionTwo(t);
    const before = await allCiphertexts(t);
    expect(before.length).toBeGreaterThanOrEqual(5);
    const plaintexts = await Promise.all(before.map((c) => decryptSecret(c, OLD)));
    const lines: string[] = [];
    for (const level of ["info", "warn", "error", "log"] as const) {
      vi.spyOn(console, level).mockImplementation((...args: unknown[]) => void lines.push(args.map(String).join(" ")));
    }

    // The new key goes first; the old one stays under its id (default) while secrets move.
    process.env.ENCRYPTION_KEYS = `k2:${NEW},default:${OLD}`;
    const both = encryptionKeys(loadConfig());
    expect((await get(t)).rotation).toBeNull();
    const started = await post(t);
    expect(started.status).toBe(202);
    expect(((await started.json()) as { rotation: { keyId: string; status: string } }).rotation).toMatchObject({ keyId: "k2", status: "running" });
    // Under way (its pages not run yet): every secret still opens with both keys configured.
    const mid = await allCiphertexts(t);
    expect(await Promise.all(mid.map((c) => decryptSecret(c, both)))).toEqual(plaintexts);

    await drain(t);
    const done = await get(t);
    expect(done).toMatchObject({ currentKeyId: "k2", keyIds: ["k2", "default"] });
    expect(done.rotation).toMatchObject({ keyId: "k2", status: "done", reencrypted: before.length });
    const after = await allCiphertexts(t);
    expect(after.every((c) => c.startsWith("v2:k2:"))).toBe(true);

    // Idempotent: a second run finds nothing to re-encrypt.
    expect((await post(t)).status).toBe(202);
    await drain(t);
    expect((await get(t)).rotation).toMatchObject({ status: "done", reencrypted: 0 });
    expect(await allCiphertexts(t)).toEqual(after);

    // The old key dropped: everything still opens, in tests and in Convex (a step that decrypts).
    process.env.ENCRYPTION_KEYS = `k2:${NEW}`;
    const onlyNew = encryptionKeys(loadConfig());
    expect(await Promise.all(after.map((c) => decryptSecret(c, onlyNew)))).toEqual(plaintexts);
    const instance = (await t.run(async (ctx) => ctx.db.query("instances").first()))!;
    const token = "after-rotation";
    await t.run(async (ctx) => ctx.db.patch("instances", instance._id, { deployKeyRotation: { phase: "idle", failures: 0, lease: { token, until: Date.now() + 60_000 } } }));
    await t.action(internal.deployKeys.rotateDeployKey, { instanceId: instance._id, token });
    expect((await t.run(async (ctx) => ctx.db.get("instances", instance._id)))!.deployKeyRotation).toMatchObject({ phase: "idle", failures: 0, rotatedAt: expect.any(Number) });

    // No plaintext secret in any log line, audit row or answer.
    const audit = JSON.stringify(await t.run(async (ctx) => ctx.db.query("auditLogs").collect()));
    const answers = JSON.stringify(await get(t));
    for (const secret of plaintexts) {
      const material = secret.includes("|") ? secret.split("|")[1] : secret;
      for (const text of [...lines, audit, answers]) expect(text).not.toContain(material);
    }
  });

  test("a secret under a key id the keyring lacks stops the rotation with a clear error; once fixed, a new request resumes it", async () => {
    const t = setupBackend({ env: { ENCRYPTION_KEY: OLD } });
    const [first] = await provisionTwo(t);
    const stray = await encryptSecret("whsec_stray_secret", [{ id: "lost", key: OTHER }]);
    await t.run(async (ctx) => {
      const instance = (await ctx.db.get("instances", first))!;
      await ctx.db.patch("instances", first, { resources: { ...instance.resources, tenantWebhookSecretCiphertext: stray } });
    });
    process.env.ENCRYPTION_KEYS = `k2:${NEW},default:${OLD}`;
    await post(t);
    await drain(t);
    const failed = (await get(t)).rotation!;
    expect(failed).toMatchObject({ status: "failed", error: expect.stringContaining('encryption key id "lost"') });
    expect(failed.error).not.toContain("whsec_stray_secret");
    expect(failed.error).not.toContain(OTHER);

    process.env.ENCRYPTION_KEYS = `k2:${NEW},default:${OLD},lost:${OTHER}`;
    expect((await post(t)).status).toBe(202);
    await drain(t);
    expect((await get(t)).rotation).toMatchObject({ keyId: "k2", status: "done" });
    expect((await allCiphertexts(t)).every((c) => c.startsWith("v2:k2:"))).toBe(true);
  });

  test("a rotation that stopped mid-way (its next page never ran) continues from its cursor on the next request", async () => {
    const t = setupBackend({ env: { ENCRYPTION_KEY: OLD } });
    await provisionTwo(t);
    const count = (await allCiphertexts(t)).length;
    process.env.ENCRYPTION_KEYS = `k2:${NEW},default:${OLD}`;
    // Started, one page run by hand, and its scheduled continuation lost (never run).
    const started = await t.mutation(internal.secrets.startEncryptionRotation, { actor: "test" });
    const row = (await t.run(async (ctx) => ctx.db.query("secretRotations").first()))!;
    await t.mutation(internal.secrets.rotateEncryptionPage, { rotationId: row._id });
    const halfway = (await get(t)).rotation!;
    expect(started.status).toBe("running");
    expect(halfway).toMatchObject({ status: "running" });
    expect(halfway.reencrypted).toBeGreaterThan(0);
    expect(halfway.reencrypted).toBeLessThan(count);
    // Halfway, some secrets are under k2 and some not: reads keep working.
    const mixed = await allCiphertexts(t);
    expect(new Set(mixed.map(ciphertextKeyId))).toEqual(new Set(["k2", "default"]));
    await Promise.all(mixed.map((c) => decryptSecret(c, encryptionKeys(loadConfig()))));

    // A request while it still looks alive starts nothing new; once stale, it resumes the same row.
    vi.setSystemTime(Date.now() + 3 * 60_000);
    await t.mutation(internal.secrets.startEncryptionRotation, { actor: "test" });
    await drain(t);
    const rows = await t.run(async (ctx) => ctx.db.query("secretRotations").collect());
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: "done", reencrypted: count });
    expect((await allCiphertexts(t)).every((c) => c.startsWith("v2:k2:"))).toBe(true);
  });

  test("npm run rotate-encryption-key starts the rotation, follows it to the end and prints one JSON line last", async () => {
    const t = setupBackend({ env: { ENCRYPTION_KEY: OLD } });
    await provisionTwo(t);
    const count = (await allCiphertexts(t)).length;
    process.env.ENCRYPTION_KEYS = `k2:${NEW},default:${OLD}`;
    const run = async () => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await rotateEncryptionKey([], { BRAIN_URL: "https://brain.example", ADMIN_API_TOKEN: t.TEST_ADMIN_API_TOKEN }, {
        fetch: (url, init) => t.fetch(new URL(url).pathname, init),
        // Between checks the backend runs the pages the rotation scheduled.
        sleep: () => drain(t),
        out: (line) => out.push(line),
        err: (line) => err.push(line),
        now: () => Date.now(),
      });
      return { code, out, err };
    };
    const first = await run();
    expect(first.err).toEqual([]);
    expect(first.code).toBe(0);
    expect(first.out[0]).toBe('rotating secrets to encryption key "k2" (running)');
    expect(first.out).toContain('done: every secret is under "k2"; "default" can be dropped from ENCRYPTION_KEYS');
    expect(JSON.parse(first.out.at(-1)!)).toEqual({ keyId: "k2", status: "done", scanned: expect.any(Number), reencrypted: count });

    const second = await run();
    expect(second.code).toBe(0);
    expect(JSON.parse(second.out.at(-1)!)).toMatchObject({ keyId: "k2", status: "done", reencrypted: 0 });

    const unauthorized = await rotateEncryptionKey([], { BRAIN_URL: "https://brain.example", ADMIN_API_TOKEN: "wrong-token-0123456789" }, {
      fetch: (url, init) => t.fetch(new URL(url).pathname, init),
      sleep: async () => undefined,
      out: () => undefined,
      err: (line) => expect(line).toMatch(/401 UNAUTHORIZED/),
      now: () => Date.now(),
    });
    expect(unauthorized).toBe(1);
  });

  test("the routes are for admins only and answer in the JSON error shape", async () => {
    const t = setupBackend();
    const refused = await t.fetch("/admin/encryption/rotate", { method: "POST" });
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ error: { code: "UNAUTHORIZED" } });
    const wrongMethod = await t.fetch("/admin/encryption/rotate", { method: "DELETE", headers: adminHeaders() });
    expect(wrongMethod.status).toBe(405);
    expect(await wrongMethod.json()).toMatchObject({ error: { code: "METHOD_NOT_ALLOWED" } });
    // The route takes no body: a malformed one starts nothing (an empty one or {} starts a rotation).
    for (const body of ['{"keyId":"new"}', "not json", "[]"]) {
      const malformed = await t.fetch("/admin/encryption/rotate", { method: "POST", headers: adminHeaders(), body });
      expect(malformed.status, body).toBe(400);
      expect(await malformed.json()).toMatchObject({ error: { code: "BAD_REQUEST" } });
    }
    expect(await t.run((ctx) => ctx.db.query("secretRotations").collect())).toEqual([]);
    expect((await t.fetch("/admin/encryption/rotate", { method: "POST", headers: adminHeaders(), body: "{}" })).status).toBe(202);
  });
});

describe("no secret in an answer", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  test("the status page, the job views and an instance's health carry neither ciphertext nor secret", async () => {
    const t = setupBackend({ env: { ENCRYPTION_KEY: OLD } });
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const { body } = await statusOf(t, sessionId);
    const instance = (await t.run(async (ctx) => ctx.db.get("instances", body.instanceId as Id<"instances">)))!;
    const secrets = await Promise.all(
      SECRET_RESOURCE_FIELDS.flatMap((field) => (instance.resources[field] ? [decryptSecret(instance.resources[field], OLD)] : [])),
    );
    expect(secrets.length).toBe(2);
    const answers = await Promise.all(
      [
        `/status?session_id=${sessionId}`,
        `/admin/jobs/${body.jobId}`,
        "/admin/jobs",
        `/instance-health/${instance._id}`,
        "/admin/health",
        "/admin/encryption/rotate",
      ].map(async (path) => (await t.fetch(path, { headers: { ...adminHeaders(), Accept: "application/json" } })).text()),
    );
    for (const text of answers) {
      expect(text).not.toMatch(/v[12]:[A-Za-z0-9_-]*:?[A-Za-z0-9+/=]{16}:/);
      for (const secret of secrets) expect(text).not.toContain(secret.includes("|") ? secret.split("|")[1] : secret);
    }
  });

  test("no health probe (whose id an instance's health answer shows) is keyed by a secret field", () => {
    for (const spec of Object.values(STEPS) as { probe?: { health: boolean; requires: string } }[]) {
      if (spec.probe?.health) expect(SECRET_RESOURCE_FIELDS as readonly string[]).not.toContain(spec.probe.requires);
    }
  });
});
