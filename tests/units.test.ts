import { describe, expect, test } from "vitest";
import { backoffDelayMs, retryDelayMs, type RetryPolicy } from "../convex/lib/backoff";
import { loadConfig, missingLiveCredentials, providerMode, requireLiveCredentials, retryPolicy } from "../convex/lib/config";
import { decryptSecret, encryptSecret, timingSafeEqual } from "../convex/lib/crypto";
import { initialSteps, readySteps } from "../convex/model/dag";
import { resourceName } from "../convex/model/steps";
import { kindForStatus, outcomeForError } from "../convex/providers/classify";
import { ProviderError } from "../convex/providers/types";
import type { StepState } from "../convex/lib/validators";

const policy: RetryPolicy = { maxAttempts: 5, baseDelayMs: 1_000, maxDelayMs: 30_000, jitter: 0.2 };

describe("retry backoff", () => {
  test("starts at the base delay, doubles, and is capped", () => {
    const middle = () => 0.5; // no jitter at the midpoint
    expect([1, 2, 3, 4, 5, 6, 7].map((a) => backoffDelayMs(policy, a, middle))).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000,
    ]);
  });

  test("jitter spreads a delay by the configured fraction and never passes the cap", () => {
    expect(backoffDelayMs(policy, 1, () => 0)).toBe(800);
    expect(backoffDelayMs(policy, 1, () => 1)).toBe(1_200);
    expect(backoffDelayMs(policy, 10, () => 1)).toBe(30_000);
  });

  test("a provider's retry-after wins when it is longer than our backoff", () => {
    expect(retryDelayMs(policy, 1, 7_000, () => 0.5)).toBe(7_000);
    expect(retryDelayMs(policy, 3, 100, () => 0.5)).toBe(4_000);
  });
});

describe("configuration", () => {
  test("has documented defaults with no variables set", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ PROVIDER_MODE: "sandbox", RESOURCE_PREFIX: "brain", DEFAULT_PLAN: "starter" });
    expect(retryPolicy(config)).toEqual({ maxAttempts: 5, baseDelayMs: 1_000, maxDelayMs: 30_000, jitter: 0.2 });
  });

  test("a per-provider mode overrides PROVIDER_MODE for that provider only", () => {
    const config = loadConfig({
      PROVIDER_MODE: "sandbox",
      PROVIDER_MODE_STRIPE: "live",
      STRIPE_SECRET_KEY: "sk_test_x",
      ENCRYPTION_KEY: Buffer.alloc(32, 1).toString("base64"),
    });
    expect(providerMode(config, "stripe")).toBe("live");
    expect(providerMode(config, "convex")).toBe("sandbox");
  });

  test("a live provider without its credentials is refused, naming each missing variable", () => {
    const config = loadConfig({ PROVIDER_MODE_CLOUDFLARE: "live" });
    expect(missingLiveCredentials(config)).toEqual([
      "CLOUDFLARE_API_TOKEN (needed by live cloudflare)",
      "CLOUDFLARE_ACCOUNT_ID (needed by live cloudflare)",
      "ENCRYPTION_KEY (needed in live mode)",
    ]);
    expect(() => requireLiveCredentials(config)).toThrowError(
      expect.objectContaining({
        data: expect.objectContaining({
          code: "CONFIG_INVALID",
          message: expect.stringMatching(/CLOUDFLARE_API_TOKEN.*CLOUDFLARE_ACCOUNT_ID.*ENCRYPTION_KEY/),
        }),
      }),
    );
  });

  test("live Resend needs its credentials, since every provision job emails its customer", () => {
    const config = loadConfig({ PROVIDER_MODE_RESEND: "live", ENCRYPTION_KEY: "YnJhaW4tdGVzdC1lbmNyeXB0aW9uLWtleS0zMmJ5dGU=" });
    expect(missingLiveCredentials(config)).toEqual(["RESEND_API_KEY (needed by live resend)", "EMAIL_FROM (needed by live resend)"]);
  });

  test("an invalid value is reported by variable name, never by value", () => {
    const secretLookingValue = "short";
    let error: unknown;
    try {
      loadConfig({ ADMIN_API_TOKEN: secretLookingValue, RETRY_MAX_ATTEMPTS: "zero" });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ data: { code: "CONFIG_INVALID" } });
    const message = (error as { data: { message: string } }).data.message;
    expect(message).toContain("ADMIN_API_TOKEN");
    expect(message).toContain("RETRY_MAX_ATTEMPTS");
    expect(message).not.toContain(secretLookingValue);
  });
});

describe("secrets", () => {
  const key = Buffer.alloc(32, 7).toString("base64");

  test("encrypt then decrypt returns the secret, and each ciphertext is different", async () => {
    const a = await encryptSecret("prod:tenant|key", key);
    const b = await encryptSecret("prod:tenant|key", key);
    expect(a).not.toBe(b);
    expect(a).not.toContain("prod:tenant");
    expect(await decryptSecret(a, key)).toBe("prod:tenant|key");
  });

  test("a ciphertext cannot be opened with another key", async () => {
    const sealed = await encryptSecret("secret", key);
    await expect(decryptSecret(sealed, Buffer.alloc(32, 9).toString("base64"))).rejects.toThrow();
  });

  test("timingSafeEqual compares whole values, whatever their lengths", async () => {
    expect(await timingSafeEqual("token-value", "token-value")).toBe(true);
    expect(await timingSafeEqual("token-value", "token-valuX")).toBe(false);
    expect(await timingSafeEqual("token", "token-value")).toBe(false);
  });
});

describe("step graph", () => {
  const withStatus = (statuses: Partial<Record<string, StepState["status"]>>) =>
    initialSteps().map((s) => ({ ...s, status: statuses[s.name] ?? s.status }));

  test("the three independent steps are ready first", () => {
    expect(readySteps(initialSteps())).toEqual(["convexProject", "workosOrg", "pagesProject"]);
  });

  test("a step becomes ready once all its inputs succeeded, not before", () => {
    const steps = withStatus({ convexProject: "succeeded", workosOrg: "succeeded", pagesProject: "running" });
    expect(readySteps(steps)).toEqual(["workosUser", "configureBackend"]);
    const more = withStatus({
      convexProject: "succeeded",
      workosOrg: "succeeded",
      pagesProject: "succeeded",
      configureBackend: "running",
      workosUser: "running",
    });
    expect(readySteps(more)).toEqual(["configureSite"]);
    const deploy = withStatus({
      convexProject: "succeeded",
      workosOrg: "succeeded",
      pagesProject: "succeeded",
      configureBackend: "succeeded",
      configureSite: "succeeded",
      workosUser: "running",
    });
    // validate waits for workosUser as well as deployApp.
    expect(readySteps(deploy)).toEqual(["deployApp"]);
  });

  test("a lifecycle job's graph is its own: deprovisioning deletes one resource at a time, newest first", () => {
    expect(initialSteps("deprovision").map((s) => s.name)).toEqual(["deletePagesProject", "deleteWorkosOrg", "deleteConvexProject", "markDeleted"]);
    expect(readySteps(initialSteps("deprovision"))).toEqual(["deletePagesProject"]);
    expect(readySteps(initialSteps("suspend"))).toEqual(["suspendBackend", "deactivateMembers"]);
  });
});

describe("resource naming and failure classification", () => {
  test("resource names are deterministic, DNS-safe and carry the prefix", () => {
    expect(resourceName("brain", "k57ABC;def_12")).toBe("brain-k57abcdef12");
    expect(resourceName("brain", "x".repeat(80))).toHaveLength(58);
  });

  test("statuses classify as transient, rate limited or permanent", () => {
    expect([408, 429, 500, 503, 400, 401, 403, 404, 422].map(kindForStatus)).toEqual([
      "transient", "rate_limited", "transient", "transient", "permanent", "permanent", "permanent", "permanent", "permanent",
    ]);
  });

  test("thrown errors become step outcomes; unknown errors count as transient", () => {
    expect(outcomeForError(new ProviderError("stripe", "rate_limited", "slow down", 2_000)).outcome).toEqual({
      kind: "rate_limited",
      message: "stripe: slow down",
      retryAfterMs: 2_000,
    });
    expect(outcomeForError(new TypeError("fetch failed"))).toMatchObject({
      outcome: { kind: "transient" },
      classified: false,
    });
  });
});
