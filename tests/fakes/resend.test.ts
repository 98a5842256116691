// @vitest-environment node
// Drives the Resend fake through the real resend 6.38 SDK, which never throws for HTTP
// errors: every outcome arrives as `{ data, error }`, so that is what these tests read.
import { Resend } from "resend";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { startResendFake, type ResendFake } from "./resend";

const API_KEY = "re_fake_resend_key";
let fake: ResendFake;
let resend: Resend;

const clientFor = (key: string) => new Resend(key, { baseUrl: fake.url });
const welcome = (to = "owner@customer.example") => ({
  from: "Brain <noreply@brain.example.com>",
  to,
  subject: "Your stack is ready",
  html: "<p>Welcome</p>",
  text: "Welcome",
});

beforeEach(async () => {
  fake = await startResendFake({ apiKey: API_KEY });
  resend = clientFor(API_KEY);
});
afterEach(async () => {
  await fake.close();
});

describe("sending", () => {
  test("a valid email answers with a uuid id and can be fetched back", async () => {
    const sent = await resend.emails.send({ ...welcome(), replyTo: "support@brain.example.com", tags: [{ name: "kind", value: "welcome" }] });
    expect(sent.error).toBeNull();
    expect(sent.data?.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(fake.requests.at(-1)?.body).toMatchObject({ reply_to: "support@brain.example.com" });

    const fetched = await resend.emails.get(sent.data!.id);
    expect(fetched.error).toBeNull();
    expect(fetched.data).toMatchObject({
      object: "email",
      id: sent.data!.id,
      from: "Brain <noreply@brain.example.com>",
      to: ["owner@customer.example"],
      subject: "Your stack is ready",
      html: "<p>Welcome</p>",
      text: "Welcome",
      reply_to: ["support@brain.example.com"],
      cc: null,
      bcc: null,
      scheduled_at: null,
      last_event: "sent",
      tags: [{ name: "kind", value: "welcome" }],
    });
    expect(fetched.data?.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/);
    expect(fake.emails()).toMatchObject([{ id: sent.data!.id, idempotencyKey: null }]);
  });

  test("text alone is enough and several recipients are kept in order", async () => {
    const sent = await resend.emails.send({ from: "a@brain.example.com", to: ["x@c.example", "y@c.example"], subject: "Hi", text: "plain" });
    expect(sent.error).toBeNull();
    expect(fake.emails()[0]).toMatchObject({ to: ["x@c.example", "y@c.example"], html: null, text: "plain" });
  });

  test("a missing email is a 404 not_found and a malformed id a 422 invalid_parameter", async () => {
    const missing = await resend.emails.get("00000000-0000-4000-8000-000000000000");
    expect(missing).toMatchObject({ data: null, error: { statusCode: 404, name: "not_found" } });
    const malformed = await resend.emails.get("not-a-uuid");
    expect(malformed).toMatchObject({ data: null, error: { statusCode: 422, name: "invalid_parameter" } });
  });
});

describe("validation", () => {
  test.each([
    ["from", { ...welcome(), from: "" }, "Missing `from` field."],
    ["to", { ...welcome(), to: [] as string[] }, "Missing `to` field."],
    ["subject", { ...welcome(), subject: "" }, "Missing `subject` field."],
  ])("a missing %s is a 422 missing_required_field", async (_field, payload, message) => {
    const result = await resend.emails.send(payload);
    expect(result).toEqual({ data: null, error: { statusCode: 422, name: "missing_required_field", message }, headers: expect.any(Object) });
    expect(fake.emails()).toEqual([]);
  });

  test("an email with neither html nor text is a 422 missing_required_field", async () => {
    const result = await resend.emails.send({ from: "a@brain.example.com", to: "b@c.example", subject: "Hi" } as never);
    expect(result.error).toMatchObject({ statusCode: 422, name: "missing_required_field" });
  });

  test("a malformed sender is a 422 invalid_from_address and a malformed recipient a 422 validation_error", async () => {
    const badFrom = await resend.emails.send({ ...welcome(), from: "Brain noreply at brain" });
    expect(badFrom.error).toMatchObject({ statusCode: 422, name: "invalid_from_address" });
    const badTo = await resend.emails.send(welcome("not-an-address"));
    expect(badTo.error).toMatchObject({ statusCode: 422, name: "validation_error" });
    expect(fake.emails()).toEqual([]);
  });
});

describe("idempotency", () => {
  test("the same key and payload replay the original id without sending twice", async () => {
    const first = await resend.emails.send(welcome(), { idempotencyKey: "welcome/inst_1" });
    const second = await resend.emails.send(welcome(), { idempotencyKey: "welcome/inst_1" });
    expect(second.data).toEqual(first.data);
    expect(fake.emails()).toHaveLength(1);
    expect(fake.emails()[0].idempotencyKey).toBe("welcome/inst_1");
  });

  test("the same key with a different payload is a 409 invalid_idempotent_request", async () => {
    await resend.emails.send(welcome(), { idempotencyKey: "welcome/inst_2" });
    const result = await resend.emails.send(welcome("someone-else@c.example"), { idempotencyKey: "welcome/inst_2" });
    expect(result).toMatchObject({ data: null, error: { statusCode: 409, name: "invalid_idempotent_request" } });
    expect(fake.emails()).toHaveLength(1);
  });

  test("a key longer than 256 characters is a 400 invalid_idempotency_key", async () => {
    const result = await resend.emails.send(welcome(), { idempotencyKey: "k".repeat(257) });
    expect(result.error).toMatchObject({ statusCode: 400, name: "invalid_idempotency_key" });
    expect((await resend.emails.send(welcome(), { idempotencyKey: "k".repeat(256) })).error).toBeNull();
  });
});

describe("auth and faults", () => {
  test("a wrong API key is a 403 invalid_api_key and a missing one a 401 missing_api_key", async () => {
    const wrong = await clientFor("re_wrong").emails.send(welcome());
    expect(wrong).toMatchObject({ data: null, error: { statusCode: 403, name: "invalid_api_key" } });
    const response = await fetch(`${fake.url}/emails`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ statusCode: 401, name: "missing_api_key" });
    expect(fake.emails()).toEqual([]);
  });

  test("two injected 503s come back as errors, not exceptions, and the third send succeeds", async () => {
    fake.inject({ status: 503, times: 2, path: "/emails" });
    for (let i = 0; i < 2; i++) {
      const result = await resend.emails.send(welcome(), { idempotencyKey: "welcome/retry" });
      expect(result).toMatchObject({ data: null, error: { statusCode: 503, name: "application_error" } });
    }
    expect(fake.emails()).toEqual([]);
    expect((await resend.emails.send(welcome(), { idempotencyKey: "welcome/retry" })).error).toBeNull();
    expect(fake.emails()).toHaveLength(1);
  });

  test("an injected 429 is a rate_limit_exceeded error with the Retry-After header", async () => {
    fake.inject({ status: 429, retryAfterSeconds: 2 });
    const result = await resend.emails.send(welcome());
    expect(result.error).toMatchObject({ statusCode: 429, name: "rate_limit_exceeded" });
    expect(result.headers?.["retry-after"]).toBe("2");
  });

  test("a dropped response still sends the email; the client sees statusCode null and a keyed retry replays the id", async () => {
    fake.inject({ method: "POST", path: "/emails", dropResponse: true });
    const dropped = await resend.emails.send(welcome(), { idempotencyKey: "welcome/drop" });
    expect(dropped).toMatchObject({ data: null, error: { name: "application_error", statusCode: null } });
    expect(fake.emails()).toHaveLength(1);
    const retried = await resend.emails.send(welcome(), { idempotencyKey: "welcome/drop" });
    expect(retried.data?.id).toBe(fake.emails()[0].id);
    expect(fake.emails()).toHaveLength(1);
  });
});
