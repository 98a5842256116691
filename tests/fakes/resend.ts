// Fake Resend API for tests: POST /emails and GET /emails/:id with Resend's JSON bodies,
// `{statusCode, name, message}` errors and Idempotency-Key rules, kept in memory on top of
// startFakeServer. It must never call the real Resend or deliver mail anywhere; "sent"
// emails only land in `emails()`.
import { randomUUID } from "node:crypto";
import { startFakeServer, type FakeRequest, type FakeResponse, type FakeServer } from "./base";
import { createIdempotencyStore } from "./idempotency";

export type EmailRecord = {
  object: "email";
  id: string;
  from: string;
  to: string[];
  cc: string[] | null;
  bcc: string[] | null;
  reply_to: string[] | null;
  subject: string;
  html: string | null;
  text: string | null;
  headers: Record<string, string> | null;
  tags: { name: string; value: string }[];
  scheduled_at: string | null;
  created_at: string;
  last_event: "sent";
  /** The Idempotency-Key the email was sent with, if any (not part of the wire object). */
  idempotencyKey: string | null;
};

export type ResendFake = FakeServer & { emails(): EmailRecord[] };

type ErrorName =
  | "validation_error"
  | "missing_required_field"
  | "invalid_from_address"
  | "invalid_parameter"
  | "invalid_idempotency_key"
  | "invalid_idempotent_request"
  | "missing_api_key"
  | "invalid_api_key"
  | "not_found"
  | "method_not_allowed"
  | "rate_limit_exceeded"
  | "security_error"
  | "application_error";

const resendError = (statusCode: number, name: ErrorName, message: string): FakeResponse => ({
  status: statusCode,
  body: { statusCode, name, message },
});

const ADDRESS = /^(?:[^<>]*<\s*[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+\s*>|[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+)$/;
const ADDRESS_FORMAT = "The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);
const asList = (value: unknown): string[] | null =>
  value === undefined || value === null ? null : Array.isArray(value) ? value.map(String) : [String(value)];
const present = (value: unknown) => typeof value === "string" && value.trim() !== "";
/** Resend's timestamp style, e.g. 2023-04-03T22:13:42.674000+00:00. */
const timestamp = () => new Date().toISOString().replace(/\.(\d{3})Z$/, ".$1000+00:00");

function validate(body: Record<string, unknown>): FakeResponse | null {
  for (const field of ["from", "to", "subject"]) {
    const value = body[field];
    if (value === undefined || value === null || value === "" || (Array.isArray(value) && value.length === 0)) {
      return resendError(422, "missing_required_field", `Missing \`${field}\` field.`);
    }
  }
  if (!present(body.html) && !present(body.text) && !isObject(body.template)) {
    return resendError(422, "missing_required_field", "Missing `html` or `text` field.");
  }
  if (typeof body.from !== "string" || !ADDRESS.test(body.from.trim())) {
    return resendError(422, "invalid_from_address", `Invalid \`from\` field. ${ADDRESS_FORMAT}`);
  }
  for (const field of ["to", "cc", "bcc", "reply_to"]) {
    const list = asList(body[field]) ?? [];
    if (list.some((address) => !ADDRESS.test(address.trim()))) {
      return resendError(422, "validation_error", `Invalid \`${field}\` field. ${ADDRESS_FORMAT}`);
    }
    if (list.length > 50) return resendError(422, "validation_error", `Too many recipients in \`${field}\`: at most 50 allowed.`);
  }
  if (body.subject !== undefined && typeof body.subject !== "string") {
    return resendError(422, "validation_error", "The `subject` field must be a string.");
  }
  return null;
}

export async function startResendFake(options: { apiKey: string }): Promise<ResendFake> {
  const emails = new Map<string, EmailRecord>();
  const idempotency = createIdempotencyStore();

  function send(request: FakeRequest): FakeResponse {
    const body = isObject(request.body) ? request.body : {};
    const hasKey = Object.prototype.hasOwnProperty.call(request.headers, "idempotency-key");
    const key = hasKey ? request.headers["idempotency-key"] : null;
    if (key !== null && (key.length < 1 || key.length > 256)) {
      return resendError(400, "invalid_idempotency_key", "The key must be between 1-256 chars.");
    }
    if (key !== null) {
      const seen = idempotency.lookup(key, "POST /emails", body);
      if (seen.kind === "replay") return seen.response;
      if (seen.kind === "mismatch") {
        return resendError(409, "invalid_idempotent_request", "Same idempotency key used with a different request payload.");
      }
    }
    const problem = validate(body);
    if (problem) return problem;
    const email: EmailRecord = {
      object: "email",
      id: randomUUID(),
      from: (body.from as string).trim(),
      to: asList(body.to) ?? [],
      cc: asList(body.cc),
      bcc: asList(body.bcc),
      reply_to: asList(body.reply_to),
      subject: body.subject as string,
      html: present(body.html) ? (body.html as string) : null,
      text: present(body.text) ? (body.text as string) : null,
      headers: isObject(body.headers) ? (body.headers as Record<string, string>) : null,
      tags: Array.isArray(body.tags) ? (body.tags as { name: string; value: string }[]) : [],
      scheduled_at: typeof body.scheduled_at === "string" ? body.scheduled_at : null,
      created_at: timestamp(),
      last_event: "sent",
      idempotencyKey: key,
    };
    emails.set(email.id, email);
    const response: FakeResponse = { status: 200, body: { id: email.id } };
    if (key !== null) idempotency.remember(key, "POST /emails", body, response);
    return response;
  }

  function get(request: FakeRequest): FakeResponse {
    const id = request.params.id;
    if (!UUID.test(id)) return resendError(422, "invalid_parameter", "The `id` must be a valid UUID.");
    const email = emails.get(id);
    if (!email) return resendError(404, "not_found", "Email not found");
    const { idempotencyKey: _key, headers: _headers, ...wire } = email;
    void _key;
    void _headers;
    return { status: 200, body: { ...wire, tags: wire.tags.length ? wire.tags : undefined } };
  }

  const authorized =
    (handler: (request: FakeRequest) => FakeResponse) =>
    (request: FakeRequest): FakeResponse => {
      const header = request.headers.authorization ?? "";
      const key = /^bearer /i.test(header) ? header.slice(7).trim() : "";
      if (!key) {
        return resendError(
          401,
          "missing_api_key",
          "Missing API key in the authorization header. Include the following header in the request: Authorization: Bearer YOUR_API_KEY",
        );
      }
      if (key !== options.apiKey) return resendError(403, "invalid_api_key", "API key is invalid");
      const answer = handler(request);
      return { ...answer, body: structuredClone(answer.body) };
    };

  const server = await startFakeServer({
    name: "resend",
    routes: [
      { method: "POST", path: "/emails", handler: authorized(send) },
      { method: "GET", path: "/emails/:id", handler: authorized(get) },
    ],
    errorBody: (status, message) =>
      ({
        statusCode: status,
        name:
          status === 429
            ? "rate_limit_exceeded"
            : status === 404
              ? "not_found"
              : status === 401
                ? "missing_api_key"
                : status === 403
                  ? "invalid_api_key"
                  : status >= 500
                    ? "application_error"
                    : "validation_error",
        message,
      }) satisfies { statusCode: number; name: ErrorName; message: string },
  });

  return Object.assign(server, {
    emails: () => [...emails.values()].map((e) => structuredClone(e)),
  });
}
