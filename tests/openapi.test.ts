// docs/openapi.yaml against the code: it lists exactly the routes convex/http.ts serves (read
// off the router itself, not a hand-kept list), and real answers of a sandbox backend, success
// and error alike, match the schemas it gives for their route and status.
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import Ajv2020, { type ValidateFunction } from "ajv/dist/2020";
import { parse } from "yaml";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import http from "../convex/http";
import { adminHeaders, drain, drainFor, sendCheckout, setupBackend, signedStripeRequest, type TestBackend } from "./harness";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

// ---------------------------------------------------------------------------------------------
// The document, and a validator over its schemas

type Json = Record<string, unknown>;
type Operation = { operationId: string; security?: Json[]; parameters?: Json[]; responses: Record<string, Json> };
type Doc = { openapi: string; security: Json[]; paths: Record<string, Record<string, Operation>>; components: Json };

const DOC_ID = "openapi";
const doc = parse(readFileSync(new URL("../docs/openapi.yaml", import.meta.url), "utf8")) as Doc;
const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

// OpenAPI 3.1 schemas are JSON Schema 2020-12. The whole document is added as one resource so
// that every `#/components/...` reference resolves inside it; its top-level keys are not keywords.
const ajv = new Ajv2020({ strict: true, strictTypes: false, allErrors: true });
for (const key of Object.keys(doc)) ajv.addKeyword(key);
ajv.addSchema({ ...doc, $id: DOC_ID });
const validators = new Map<string, ValidateFunction>();
/** The validator of the schema at `pointer` (a JSON pointer into the document). */
function validatorAt(pointer: string): ValidateFunction {
  let validate = validators.get(pointer);
  if (!validate) {
    validate = ajv.compile({ $ref: `${DOC_ID}#${pointer}` });
    validators.set(pointer, validate);
  }
  return validate;
}
const escape = (segment: string) => segment.replace(/~/g, "~0").replace(/\//g, "~1");
/** Follows a `$ref` inside the document, giving the object and its pointer. */
function resolve(value: Json, pointer: string): { value: Json; pointer: string } {
  const ref = value.$ref;
  if (typeof ref !== "string") return { value, pointer };
  const target = ref.slice(1);
  const found = target
    .split("/")
    .slice(1)
    .reduce<unknown>((node, part) => (node as Json)[part.replace(/~1/g, "/").replace(/~0/g, "~")], doc);
  return resolve(found as Json, target);
}

const operations = Object.entries(doc.paths).flatMap(([path, item]) =>
  Object.entries(item)
    .filter(([method]) => HTTP_METHODS.includes(method))
    .map(([method, operation]) => ({ path, method: method.toUpperCase(), operation })),
);
const isAdmin = (operation: Operation) => (operation.security ?? doc.security).some((requirement) => "adminBearer" in requirement);

/** A concrete request path for a document path: each `{param}` filled in. */
const concrete = (path: string, values: Record<string, string> = {}) =>
  path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(values[name] ?? `unknown-${name}`));

/** The router's key for a document path: exact paths as they are, templated ones by the prefix before the first parameter. */
const routerKey = (method: string, path: string) => (path.includes("{") ? `${method} ${path.slice(0, path.indexOf("{"))}*` : `${method} ${path}`);

// ---------------------------------------------------------------------------------------------
// Checking one real answer against the document

/** `METHOD path status` of every answer that matched the document. */
const validated = new Set<string>();

/**
 * Asserts that `response` is documented for the operation (its status, content type and
 * required headers) and that its body matches the schema; returns the body.
 */
async function documented(response: Response, method: string, path: string, responsePointer?: string): Promise<any> {
  const status = String(response.status);
  const where = `${method} ${path} → ${status}`;
  let declared: { value: Json; pointer: string };
  if (responsePointer) {
    declared = resolve({ $ref: `#${responsePointer}` }, responsePointer);
  } else {
    const operation = doc.paths[path]?.[method.toLowerCase()];
    expect(operation, `${method} ${path} is in the document`).toBeDefined();
    const entry = operation.responses[status];
    const body = await response.clone().text();
    expect(entry, `${where} is documented (body ${body})`).toBeDefined();
    declared = resolve(entry, `/paths/${escape(path)}/${method.toLowerCase()}/responses/${status}`);
  }
  for (const [name, header] of Object.entries((declared.value.headers ?? {}) as Record<string, Json>)) {
    const { value } = resolve(header, "");
    if (value.required) expect(response.headers.get(name), `${where}: header ${name}`).not.toBeNull();
  }
  const contentType = (response.headers.get("content-type") ?? "").split(";")[0].trim();
  const content = (declared.value.content ?? {}) as Record<string, Json>;
  expect(Object.keys(content), `${where}: content type ${contentType} is documented`).toContain(contentType);
  const body: unknown = contentType === "application/json" ? await response.json() : await response.text();
  const validate = validatorAt(`${declared.pointer}/content/${escape(contentType)}/schema`);
  if (!validate(body)) {
    expect.fail(`${where} does not match the document: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body, null, 2)}`);
  }
  validated.add(`${method} ${path} ${status}`);
  return body;
}

/** Fetches `path` (filled in from `params`) and checks the answer against the document's `method docPath`. */
async function call(
  t: TestBackend,
  method: string,
  docPath: string,
  options: { params?: Record<string, string>; query?: string; body?: unknown; headers?: Record<string, string>; admin?: boolean } = {},
) {
  const headers: Record<string, string> = { ...(options.admin === false ? {} : adminHeaders()), ...options.headers };
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    headers["content-type"] ??= "application/json";
  }
  const response = await t.fetch(`${concrete(docPath, options.params)}${options.query ?? ""}`, { method, headers, body });
  return { status: response.status, body: await documented(response, method, docPath) };
}

// ---------------------------------------------------------------------------------------------

describe("docs/openapi.yaml", () => {
  test("is an OpenAPI 3.1 document whose schemas all compile and whose operations are complete", () => {
    expect(doc.openapi).toBe("3.1.0");
    // Every schema anywhere in the document compiles (so every $ref resolves).
    const walk = (node: unknown, pointer: string): void => {
      if (node === null || typeof node !== "object") return;
      for (const [key, value] of Object.entries(node)) {
        const here = `${pointer}/${escape(key)}`;
        if (key === "schema" || (pointer === "/components/schemas" && typeof value === "object")) validatorAt(here);
        else walk(value, here);
      }
    };
    walk(doc.paths, "/paths");
    walk(doc.components, "/components");
    const ids = operations.map(({ operation }) => operation.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { path, method, operation } of operations) {
      const where = `${method} ${path}`;
      // Each path parameter is declared, and nothing else is declared in the path.
      const inPath = [...path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]).sort();
      const declared = (operation.parameters ?? [])
        .map((parameter) => resolve(parameter, "").value)
        .filter((parameter) => parameter.in === "path")
        .map((parameter) => parameter.name as string)
        .sort();
      expect(declared, `${where}: path parameters`).toEqual(inPath);
      const statuses = Object.keys(operation.responses);
      expect(statuses.some((status) => status.startsWith("2")), `${where}: a success answer`).toBe(true);
      expect(statuses, `${where}: an unexpected error`).toContain("500");
      if (isAdmin(operation)) expect(statuses, `${where}: admin refusals`).toEqual(expect.arrayContaining(["401", "429", "503"]));
      // Every error answer is in the error shape.
      for (const status of statuses.filter((s) => Number(s) >= 400)) {
        const { value } = resolve(operation.responses[status], "");
        const schema = ((value.content as Record<string, Json>)["application/json"].schema ?? {}) as Json;
        expect(schema.$ref, `${where} ${status}: the error shape`).toBe("#/components/schemas/Error");
      }
    }
  });

  test("lists exactly the routes http.ts serves, and every other method on a listed path is a documented 405", async () => {
    const t = setupBackend();
    // Every (method, path) registered on the router, prefix routes as "<prefix>*". The router also
    // registers a 405 answer for each method a path does not serve; those are told apart by asking.
    const registered = http.getRoutes().map(([path, method]) => ({ path, method: method as string }));
    expect(registered.length).toBeGreaterThan(0);
    const served = new Set<string>();
    const allowed = new Map<string, Set<string>>();
    for (const { path, method } of registered) {
      const response = await t.fetch(path.endsWith("*") ? `${path.slice(0, -1)}probe` : path, { method });
      if (response.status === 405) {
        // The 405 filler names the path's real methods: remember them to compare with the document.
        allowed.set(path, new Set((response.headers.get("allow") ?? "").split(",").map((m) => m.trim())));
      } else {
        served.add(`${method} ${path}`);
      }
    }
    const listed = operations.map(({ method, path }) => routerKey(method, path));
    expect(new Set(listed).size, "no two document paths map to one route").toBe(listed.length);
    expect([...listed].sort()).toEqual([...served].sort());

    // A listed path asked with a method it does not serve: 405 in the error shape, Allow naming the document's methods.
    for (const [path, item] of Object.entries(doc.paths)) {
      const methods = Object.keys(item).filter((m) => HTTP_METHODS.includes(m)).map((m) => m.toUpperCase());
      const other = ["DELETE", "PUT", "PATCH"].find((m) => !methods.includes(m))!;
      const response = await t.fetch(concrete(path), { method: other });
      expect(response.status, `${other} ${path}`).toBe(405);
      expect(new Set(response.headers.get("allow")!.split(",").map((m) => m.trim())), `Allow of ${path}`).toEqual(new Set(methods));
      const body = await documented(response, other, path, "/components/responses/MethodNotAllowed");
      expect(body.error.code).toBe("METHOD_NOT_ALLOWED");
      const key = routerKey("GET", path).split(" ")[1];
      if (allowed.has(key)) expect(allowed.get(key), `Allow of ${key}`).toEqual(new Set(methods));
    }
  });

  test("asks for the bearer token exactly on the operations it marks admin, and the refusals match", async () => {
    const t = setupBackend({ env: { RATE_LIMIT_ADMIN_FAILURES_PER_ADDRESS_PER_MINUTE: "30" } });
    for (const { path, method, operation } of operations) {
      const { status, body } = await call(t, method, path, { admin: false, ...(method === "POST" ? { body: "" } : {}) });
      if (isAdmin(operation)) {
        expect([status, body.error.code], `${method} ${path}`).toEqual([401, "UNAUTHORIZED"]);
      } else {
        expect(status, `${method} ${path} needs no token`).not.toBe(401);
      }
    }
    // A wrong token counts as a failure too; past the limit the refusals are 429 with Retry-After.
    let last = { status: 0, body: {} as any };
    for (let i = 0; i < 40 && last.status !== 429; i++) {
      last = await call(t, "GET", "/admin/circuits", { headers: adminHeaders("not-the-token") });
    }
    expect(last.body.error.code).toBe("RATE_LIMITED");
    // The right token is never throttled.
    expect((await call(t, "GET", "/admin/circuits")).status).toBe(200);

    const disabled = setupBackend({ env: { ADMIN_API_TOKEN: "" } });
    const off = await call(disabled, "GET", "/admin/jobs");
    expect([off.status, off.body.error.code]).toEqual([503, "ADMIN_API_NOT_CONFIGURED"]);
  });

  test("the answers of a ready and a failed checkout, and of every admin route over them, match the document", async () => {
    const CALLBACK_SECRET = "callback-secret-0123456789abcdef";
    const RESEND_SECRET = `whsec_${Buffer.from("resend-secret-0123456789abcdef").toString("base64")}`;
    const t = setupBackend({ env: { PROVISION_CALLBACK_SECRET: CALLBACK_SECRET, RESEND_WEBHOOK_SECRET: RESEND_SECRET } });

    // Stripe webhook: a new event, the same again, a forged one.
    const ok = await sendCheckout(t);
    expect((await documented(ok.response, "POST", "/stripe/webhook")).duplicate).toBe(false);
    const again = await t.fetch("/stripe/webhook", signedStripeRequest(ok.event));
    expect((await documented(again, "POST", "/stripe/webhook")).duplicate).toBe(true);
    const forged = await t.fetch("/stripe/webhook", signedStripeRequest(ok.event, { secret: "whsec_wrong" }));
    expect((await documented(forged, "POST", "/stripe/webhook")).error.code).toBe("INVALID_SIGNATURE");

    // The status page while pending, then ready; a failed checkout next to it.
    const pending = await call(t, "GET", "/status", { query: `?session_id=${ok.sessionId}`, headers: { Accept: "application/json" }, admin: false });
    expect(pending.body.status).toBe("pending");
    await drain(t);
    await t.mutation(internal.sandbox.injectFault, { operation: "pagesProject", kind: "permanent", times: 1 });
    const bad = await sendCheckout(t);
    // Not `drain`: the failed job's cleanup, a day later, would take it out of the dead letter.
    await drainFor(t);
    const ready = await call(t, "GET", "/status", { query: `?session_id=${ok.sessionId}`, headers: { Accept: "application/json" }, admin: false });
    const failed = await call(t, "GET", "/status", { query: `?session_id=${bad.sessionId}`, headers: { Accept: "application/json" }, admin: false });
    expect([ready.body.status, failed.body.status]).toEqual(["ready", "failed"]);
    const page = await call(t, "GET", "/status", { query: `?session_id=${ok.sessionId}`, admin: false });
    expect(page.body).toContain("<html");
    expect((await call(t, "GET", "/status", { query: "?session_id=cs_unknown", admin: false })).status).toBe(404);
    expect((await call(t, "GET", "/status", { admin: false })).status).toBe(400);
    const instanceId: string = ready.body.instanceId;
    const jobId: string = ready.body.jobId;
    const failedJobId: string = failed.body.jobId;

    // Health: one instance now, the fleet, incidents, maintenance windows.
    const health = await call(t, "GET", "/instance-health/{instanceId}", { params: { instanceId } });
    expect(health.body.overall).toBe("healthy");
    expect((await call(t, "GET", "/instance-health/{instanceId}", { params: { instanceId: "nope" } })).status).toBe(404);
    const fleet = await call(t, "GET", "/admin/health", { query: "?limit=1" });
    expect(fleet.status).toBe(200);
    expect((await call(t, "GET", "/admin/health", { query: "?status=sideways" })).status).toBe(400);
    expect((await call(t, "GET", "/admin/incidents", { query: "?status=open" })).status).toBe(200);
    expect((await call(t, "GET", "/admin/incidents", { query: "?limit=0" })).status).toBe(400);
    expect((await call(t, "GET", "/admin/incidents", { query: "?instanceId=nope" })).status).toBe(404);
    const from = Date.now() + 60_000;
    const window = await call(t, "POST", "/admin/maintenance", { body: { instanceId, from, until: from + 3_600_000, reason: "database upgrade" } });
    expect(window.status).toBe(201);
    const fleetWindow = await call(t, "POST", "/admin/maintenance", { body: { from: "2099-01-01T00:00:00Z", until: "2099-01-01T02:00:00Z", reason: "migration" } });
    expect(fleetWindow.body).not.toHaveProperty("instanceId");
    expect((await call(t, "POST", "/admin/maintenance", { body: { from, until: from - 1, reason: "backwards" } })).status).toBe(400);
    expect((await call(t, "POST", "/admin/maintenance", { body: "not json" })).status).toBe(400);
    expect((await call(t, "POST", "/admin/maintenance", { body: { instanceId: "nope", from, until: from + 1, reason: "x" } })).status).toBe(404);
    const windows = await call(t, "GET", "/admin/maintenance");
    expect(windows.body.windows).toHaveLength(2);

    // Jobs: the listing, one job, the dead letter, the circuits, the KPIs.
    const jobs = await call(t, "GET", "/admin/jobs", { query: "?limit=1" });
    expect(jobs.body.continueCursor).toEqual(expect.any(String));
    expect((await call(t, "GET", "/admin/jobs", { query: "?limit=500" })).status).toBe(400);
    const job = await call(t, "GET", "/admin/jobs/{jobId}", { params: { jobId } });
    expect(job.body.steps.length).toBeGreaterThan(0);
    expect((await call(t, "GET", "/admin/jobs/{jobId}", { params: { jobId: failedJobId } })).body.error).toBeDefined();
    expect((await call(t, "GET", "/admin/jobs/{jobId}", { params: { jobId: "nope" } })).status).toBe(404);
    const noId = await t.fetch("/admin/jobs/", { headers: adminHeaders() });
    expect((await documented(noId, "GET", "/admin/jobs/{jobId}")).error.code).toBe("INVALID_ID");
    const deadLetter = await call(t, "GET", "/admin/dead-letter");
    expect(deadLetter.body.jobs.map((entry: { jobId: string }) => entry.jobId)).toContain(failedJobId);
    expect((await call(t, "GET", "/admin/circuits")).body.circuits.length).toBeGreaterThan(0);
    const metrics = await call(t, "GET", "/admin/metrics", { query: `?from=${Date.now() - 3_600_000}&to=${Date.now() + 1}` });
    expect(metrics.body.jobs.started).toBeGreaterThan(0);
    expect((await call(t, "GET", "/admin/metrics", { query: "?from=yesterday" })).status).toBe(400);

    // Forwarding, orphans, reconciliation.
    expect((await call(t, "GET", "/admin/deliveries", { query: `?instanceId=${instanceId}` })).status).toBe(200);
    expect((await call(t, "GET", "/admin/deliveries")).status).toBe(400);
    expect((await call(t, "GET", "/admin/deliveries", { query: "?instanceId=nope" })).status).toBe(404);
    expect((await call(t, "POST", "/admin/deliveries/{deliveryId}/redeliver", { params: { deliveryId: "nope" } })).status).toBe(404);
    expect((await call(t, "GET", "/admin/orphans")).status).toBe(200);
    const cleanup = await call(t, "POST", "/admin/orphans/cleanup", { body: {} });
    expect(cleanup.body.dryRun).toBe(true);
    expect((await call(t, "POST", "/admin/orphans/cleanup", { body: { dryrun: false } })).status).toBe(400);
    const reconcile = await call(t, "POST", "/admin/reconcile", { body: { dryRun: true } });
    expect(reconcile.status).toBe(200);
    expect((await call(t, "POST", "/admin/reconcile", { body: { dryRun: "no" } })).status).toBe(400);

    // Encryption-key rotation: key ids and no rotation yet, one started, and it done.
    expect((await call(t, "GET", "/admin/encryption/rotate")).body).toMatchObject({ currentKeyId: "default", rotation: null });
    expect((await call(t, "POST", "/admin/encryption/rotate")).status).toBe(202);
    await drain(t);
    expect((await call(t, "GET", "/admin/encryption/rotate")).body.rotation.status).toBe("done");

    // The deploy workflow's callback: a waiting step's report, and the refusals.
    const sign = (body: string) => {
      const ts = Math.floor(Date.now() / 1000);
      return `t=${ts},v1=${createHmac("sha256", CALLBACK_SECRET).update(`${ts}.${body}`).digest("hex")}`;
    };
    const report = (id: string) => JSON.stringify({ jobId: id, step: "deployApp", status: "succeeded", runId: "987654", dispatchId: `${id}-1` });
    const callback = (body: string, signature?: string) =>
      call(t, "POST", "/provisioning-callback", { body, admin: false, headers: signature ? { "X-Brain-Signature": signature } : {} });
    expect((await callback(report(jobId), sign(report(jobId)))).body.error.code).toBe("STEP_NOT_WAITING");
    expect((await callback(report(jobId))).body.error.code).toBe("CALLBACK_UNSIGNED");
    expect((await callback(report(jobId), sign("another body"))).body.error.code).toBe("CALLBACK_BAD_SIGNATURE");
    expect((await callback("{}", sign("{}"))).body.error.code).toBe("BAD_REQUEST");
    expect((await callback(report("nope"), sign(report("nope")))).status).toBe(404);
    await t.run(async (ctx) => {
      // As after a live dispatch: deployApp of the ready job waits for its report.
      const row = (await ctx.db.get("provisioningJobs", jobId as Id<"provisioningJobs">))!;
      const steps = row.steps.map((s) =>
        s.name === "deployApp"
          ? { name: s.name, status: "waiting" as const, attempts: 1 }
          : s.name === "validate" || s.name === "activate"
            ? { name: s.name, status: "pending" as const, attempts: 0 }
            : s,
      );
      await ctx.db.patch("provisioningJobs", row._id, { steps, status: "running", currentStep: 7, finishedAt: undefined });
      await ctx.db.patch("instances", row.instanceId, { status: "provisioning" });
    });
    const accepted = report(jobId);
    expect((await callback(accepted, sign(accepted))).body).toEqual({ recorded: true });
    expect((await callback(accepted, sign(accepted))).body.error.code).toBe("CALLBACK_REPLAYED");
    await drain(t);
    expect((await call(t, "GET", "/admin/jobs/{jobId}", { params: { jobId } })).body.status).toBe("succeeded");

    // Resend's delivery events, signed as Svix signs them.
    const svix = (body: string, timestamp = Math.floor(Date.now() / 1000)) => {
      const key = Buffer.from(RESEND_SECRET.slice("whsec_".length), "base64");
      const signature = createHmac("sha256", key).update(`msg_1.${timestamp}.${body}`).digest("base64");
      return { "svix-id": "msg_1", "svix-timestamp": String(timestamp), "svix-signature": `v1,${signature}` };
    };
    const delivered = JSON.stringify({ type: "email.delivered", data: { email_id: "unknown-email" } });
    const resend = (body: string, headers: Record<string, string>) => call(t, "POST", "/resend/webhook", { body, headers, admin: false });
    expect((await resend(delivered, svix(delivered))).body.kind).toBe("ignored");
    expect((await resend(delivered, {})).body.error.code).toBe("BAD_REQUEST");
    expect((await resend(delivered, svix(delivered, 1))).body.error.code).toBe("UNAUTHORIZED");
    expect((await resend("{}", svix("{}"))).body.error.code).toBe("BAD_REQUEST");

    // Retry, cancel and deprovision, and their refusals.
    const retried = await call(t, "POST", "/retry-provisioning/{jobId}", { params: { jobId: failedJobId } });
    expect(retried.status, JSON.stringify(retried.body)).toBe(202);
    const cancelled = await call(t, "POST", "/cancel-provisioning/{jobId}", { params: { jobId: failedJobId } });
    expect(cancelled.body.error.class).toBe("cancelled");
    expect((await call(t, "POST", "/cancel-provisioning/{jobId}", { params: { jobId: failedJobId } })).body.error.code).toBe("JOB_NOT_IN_PROGRESS");
    expect((await call(t, "POST", "/retry-provisioning/{jobId}", { params: { jobId } })).body.error.code).toBe("JOB_NOT_FAILED");
    expect((await call(t, "POST", "/retry-provisioning/{jobId}", { params: { jobId: "nope" } })).status).toBe(404);
    const noJob = await t.fetch("/retry-provisioning/", { method: "POST", headers: adminHeaders() });
    expect((await documented(noJob, "POST", "/retry-provisioning/{jobId}")).error.code).toBe("INVALID_ID");
    expect((await call(t, "POST", "/deprovision/{instanceId}", { params: { instanceId } })).status).toBe(202);
    expect((await call(t, "POST", "/deprovision/{instanceId}", { params: { instanceId } })).body.error.code).toBe("JOB_ALREADY_RUNNING");
    expect((await call(t, "POST", "/deprovision/{instanceId}", { params: { instanceId: "nope" } })).status).toBe(404);
    await drain(t);
    expect((await call(t, "POST", "/deprovision/{instanceId}", { params: { instanceId } })).body.error.code).toBe("INSTANCE_DELETED");
    const deleted = await call(t, "GET", "/status", { query: `?session_id=${ok.sessionId}`, headers: { Accept: "application/json" }, admin: false });
    expect(deleted.body.status).toBe("deleted");
    const skipped = await call(t, "GET", "/instance-health/{instanceId}", { params: { instanceId } });
    expect(skipped.body.resources).toEqual([]);

    // The security events (none: nothing here is suspicious at the harness's thresholds).
    expect((await call(t, "GET", "/admin/security-events")).body).toEqual({ events: [] });

    // Every operation's success answer was validated, except the redelivery (no tenant forwards in the sandbox run).
    const succeeded = operations
      .filter(({ method, path }) => [...validated].some((entry) => entry.startsWith(`${method} ${path} 2`)))
      .map(({ method, path }) => `${method} ${path}`);
    const missing = operations.map(({ method, path }) => `${method} ${path}`).filter((op) => !succeeded.includes(op));
    expect(missing).toEqual(["POST /admin/deliveries/{deliveryId}/redeliver"]);
  });
});
