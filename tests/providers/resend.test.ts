// Contract tests for the live Resend adapter (convex/providers/resend.ts) on the real resend
// SDK against the Resend fake: one send per idempotency key, and the SDK's returned
// `{ error }` (it never throws) turned into classified ProviderErrors, one request per attempt.
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { liveResend } from "../../convex/providers/resend";
import { ProviderError } from "../../convex/providers/types";
import type { RecordedRequest } from "../fakes/base";
import { adapterHarness, type AdapterHarness, providerError } from "./env";

let h: AdapterHarness;

beforeEach(async () => {
  h = await adapterHarness();
});
afterEach(async () => {
  await h.close();
});

const sends = (): RecordedRequest[] => h.fakes.resend.requests.filter((r) => r.method === "POST" && r.path === "/emails");

const email = (overrides: Partial<Parameters<ReturnType<typeof liveResend>["sendEmail"]>[0]> = {}) => ({
  to: "ada@example.com",
  subject: "Your workspace is ready",
  html: "<p>Welcome aboard</p>",
  text: "Welcome aboard",
  idempotencyKey: "welcome/inst_1",
  ...overrides,
});

describe("sendEmail", () => {
  test("sends one email from EMAIL_FROM with the idempotency key and returns Resend's id", async () => {
    const { id } = await liveResend(h.env).sendEmail(email());

    expect(h.fakes.resend.emails()).toEqual([
      expect.objectContaining({
        id,
        from: "Brain <brain@example.com>",
        to: ["ada@example.com"],
        subject: "Your workspace is ready",
        html: "<p>Welcome aboard</p>",
        text: "Welcome aboard",
        idempotencyKey: "welcome/inst_1",
      }),
    ]);
    expect(sends()).toHaveLength(1);
    expect(sends()[0].headers["idempotency-key"]).toBe("welcome/inst_1");
  });

  test("sending twice with the same idempotency key delivers one email and returns the same id", async () => {
    const resend = liveResend(h.env);
    const first = await resend.sendEmail(email());
    const second = await resend.sendEmail(email());

    expect(second).toEqual(first);
    expect(h.fakes.resend.emails()).toHaveLength(1);
    expect(sends()).toHaveLength(2);
  });

  test("different idempotency keys send different emails", async () => {
    const resend = liveResend(h.env);
    const first = await resend.sendEmail(email({ idempotencyKey: "welcome/inst_a" }));
    const second = await resend.sendEmail(email({ idempotencyKey: "welcome/inst_b" }));

    expect(second.id).not.toBe(first.id);
    expect(h.fakes.resend.emails()).toHaveLength(2);
  });

  test("a lost send response fails transiently and the retry with the same key returns the one email sent", async () => {
    const resend = liveResend(h.env);
    h.fakes.resend.inject({ method: "POST", path: "/emails", dropResponse: true });

    const error = await providerError(resend.sendEmail(email()));
    expect(error).toMatchObject({ provider: "resend", kind: "transient" });
    const [sent] = h.fakes.resend.emails();

    const retried = await resend.sendEmail(email());
    expect(retried.id).toBe(sent.id);
    expect(h.fakes.resend.emails()).toHaveLength(1);
  });
});

describe("errors", () => {
  test("an invalid recipient is a permanent 422 validation error with Resend's message, after one request", async () => {
    const error = await providerError(liveResend(h.env).sendEmail(email({ to: "not-an-address" })));

    expect(error).toMatchObject({ provider: "resend", kind: "permanent", status: 422, providerCode: "validation_error" });
    expect(error.message).toContain("Invalid `to` field");
    expect(sends()).toHaveLength(1);
    expect(h.fakes.resend.emails()).toEqual([]);
  });

  test.each([
    [500, "application_error", "transient"],
    [502, "application_error", "transient"],
    [503, "application_error", "transient"],
    [400, "validation_error", "permanent"],
    [401, "missing_api_key", "permanent"],
    [403, "validation_error", "permanent"],
    [404, "not_found", "permanent"],
    [422, "invalid_from_address", "permanent"],
  ] as const)("a %i %s is a %s ProviderError with Resend's message after exactly one request", async (status, name, kind) => {
    h.fakes.resend.inject({ method: "POST", path: "/emails", status, body: { statusCode: status, name, message: `resend says ${status}` } });

    const error = await providerError(liveResend(h.env).sendEmail(email()));

    expect(error).toMatchObject({ provider: "resend", kind, status, providerCode: name });
    expect(error.message).toContain(`resend says ${status}`);
    expect(sends()).toHaveLength(1);
    expect(h.fakes.resend.emails()).toEqual([]);
  });

  test("a 429 is rate_limited with retryAfterMs taken from Retry-After, after exactly one request", async () => {
    const resend = liveResend(h.env);
    h.fakes.resend.inject({ method: "POST", path: "/emails", status: 429, retryAfterSeconds: 1 });
    const error = await providerError(resend.sendEmail(email()));
    expect(error).toMatchObject({ provider: "resend", kind: "rate_limited", status: 429, retryAfterMs: 1000, providerCode: "rate_limit_exceeded" });
    expect(sends()).toHaveLength(1);

    h.fakes.resend.inject({ method: "POST", path: "/emails", status: 429, retryAfterSeconds: 0 });
    const immediate = await providerError(resend.sendEmail(email()));
    expect(immediate).toMatchObject({ kind: "rate_limited", retryAfterMs: 0 });
  });

  test("the account's request budget answering 429 is rate_limited too", async () => {
    const resend = liveResend(h.env);
    h.fakes.resend.setRateLimit({ requests: 1, windowMs: 1_000 });
    await resend.sendEmail(email({ idempotencyKey: "budget/1" }));
    const error = await providerError(resend.sendEmail(email({ idempotencyKey: "budget/2" })));
    expect(error).toMatchObject({ kind: "rate_limited", status: 429, retryAfterMs: 1000 });
    expect(h.fakes.resend.emails()).toHaveLength(1);
  });

  test("reusing an idempotency key for a different email is a permanent 409", async () => {
    const resend = liveResend(h.env);
    await resend.sendEmail(email());
    const error = await providerError(resend.sendEmail(email({ subject: "Something else" })));
    expect(error).toMatchObject({ kind: "permanent", status: 409, providerCode: "invalid_idempotent_request" });
    expect(h.fakes.resend.emails()).toHaveLength(1);
  });

  test("a 409 while the same key's first send is still in progress is transient (retry later)", async () => {
    h.fakes.resend.inject({
      method: "POST",
      path: "/emails",
      status: 409,
      body: { statusCode: 409, name: "concurrent_idempotent_requests", message: "Same idempotency key used while original request is still in progress." },
    });
    const error = await providerError(liveResend(h.env).sendEmail(email()));
    expect(error).toMatchObject({ provider: "resend", kind: "transient", status: 409, providerCode: "concurrent_idempotent_requests" });
  });

  test("a wrong API key is a permanent 403", async () => {
    await h.close();
    h = await adapterHarness({ RESEND_API_KEY: "re_not_the_key" });
    const error = await providerError(liveResend(h.env).sendEmail(email()));
    expect(error).toMatchObject({ provider: "resend", kind: "permanent", status: 403, providerCode: "invalid_api_key" });
    expect(error.message).toContain("API key is invalid");
  });

  test("a dropped connection is a transient network error after exactly one request", async () => {
    h.fakes.resend.inject({ method: "POST", path: "/emails", dropResponse: true });
    const error = await providerError(liveResend(h.env).sendEmail(email()));
    expect(error).toMatchObject({ provider: "resend", kind: "transient", status: undefined });
    expect(error.message).toContain("network error");
    expect(sends()).toHaveLength(1);
  });

  test("an unreachable API is a transient network error", async () => {
    const url = h.fakes.resend.url;
    await h.fakes.resend.close();
    const error = await providerError(liveResend({ ...h.env, config: { ...h.env.config, RESEND_API_URL: url } }).sendEmail(email()));
    expect(error).toMatchObject({ provider: "resend", kind: "transient" });
  });

  test("a send slower than PROVIDER_TIMEOUT_MS is abandoned as transient", async () => {
    await h.close();
    h = await adapterHarness({ PROVIDER_TIMEOUT_MS: "200" });
    h.fakes.resend.inject({ method: "POST", path: "/emails", latencyMs: 1_500 });
    const started = Date.now();
    const error = await providerError(liveResend(h.env).sendEmail(email()));
    expect(error).toMatchObject({ provider: "resend", kind: "transient" });
    expect(Date.now() - started).toBeLessThan(1_400);
    expect(sends()).toHaveLength(1);
  });
});
