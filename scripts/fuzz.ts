// `npm run fuzz -- --inputs N [--seed S] [--verbose]`: sends N generated bad inputs at every route
// of `npm start`'s server and checks that none of them answers 5xx, changes a document, or echoes
// a secret or a stack trace (docs/security.md#fuzzing).
//
// It runs the server the way `npm start` does (the embedded backend of scripts/embedded-backend.ts
// behind a node:http bridge on 127.0.0.1, the socket's address handed on as the request's source),
// in this process, so that it can fingerprint every document of every table (Brain's and each
// component's, scheduled functions included) after each input. The crons are not run: they write on
// their own schedule, and a write here must be one an input caused. Before fuzzing, one signed test
// checkout is provisioned to ready so that real ids exist to be misused (foreign ids, replays).
//
// Inputs go out over raw TCP, so that they can carry what an HTTP client library refuses to send
// (CR and LF in header values, unknown methods, invalid UTF-8), each from its own loopback source
// address (127.x.y.z), so that per-address rate limits and blocks do not hide the routes behind them.
// An input is reproducible from the seed printed first; the last stdout line is one JSON object:
//   { "inputs", "byStatus": { "<code>": n }, "server5xx", "writes", "leaks" }
import { createHmac, randomInt } from "node:crypto";
import { appendFileSync, readFileSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { makeFunctionReference } from "convex/server";
import Stripe from "stripe";
import { parse as parseYaml } from "yaml";
import { embeddedComponents, startEmbeddedBackend } from "./embedded-backend.ts";

const { values: flags } = parseArgs({
  options: {
    inputs: { type: "string", default: "1000" },
    seed: { type: "string" },
    verbose: { type: "boolean", default: false },
    /** Send nothing: watch the quiet backend this many seconds and print what changes (a check of the fuzzer itself). */
    observe: { type: "string" },
  },
});
const say = (line: string) => process.stdout.write(`${line}\n`);
function fatal(message: string): never {
  process.stderr.write(`fuzz: ${message}\n`);
  process.exit(2);
}
const inputCount = Number(flags.inputs);
if (!Number.isInteger(inputCount) || inputCount < 1) fatal(`--inputs expects a positive integer, got "${flags.inputs}"`);
const seed = flags.seed ?? String(randomInt(1, 2 ** 31));
if (!/^\d{1,15}$/.test(seed)) fatal(`--seed expects a non-negative integer, got "${seed}"`);

// ---------------------------------------------------------------------------------------------
// A seeded PRNG (sfc32 from a splitmix64-style expansion of the seed): the same seed, the same inputs.

function makeRng(seedText: string) {
  let x = BigInt(seedText) ^ 0x9e3779b97f4a7c15n;
  const next64 = () => {
    x = (x + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
    let z = x;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
    return z ^ (z >> 31n);
  };
  let a = Number(next64() & 0xffffffffn) | 0;
  let b = Number(next64() & 0xffffffffn) | 0;
  let c = Number(next64() & 0xffffffffn) | 0;
  let d = 1;
  const float = () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(float() * n);
  return {
    float,
    int,
    pick: <T>(items: readonly T[]): T => items[int(items.length)]!,
    chance: (p: number) => float() < p,
    hex: (bytes: number) => Array.from({ length: bytes }, () => int(256).toString(16).padStart(2, "0")).join(""),
    bytes: (n: number) => Buffer.from(Array.from({ length: n }, () => int(256))),
  };
}
type Rng = ReturnType<typeof makeRng>;
const rng = makeRng(seed);
const setupRng = makeRng(String((BigInt(seed) + 7n) % 10n ** 15n));

// ---------------------------------------------------------------------------------------------
// The server's environment: npm start's embedded default, with every signing secret set (so every
// route reaches its checks), derived from the seed. The environment's own values win, as for npm start
// (a RATE_LIMIT_* setting, say: answers over a limit are counted as 429, which is not a failure).

const STRIPE_SECRET = (process.env.STRIPE_WEBHOOK_SECRET ??= `whsec_fuzz_${setupRng.hex(18)}`);
const ADMIN_TOKEN = (process.env.ADMIN_API_TOKEN ??= setupRng.hex(24));
const CALLBACK_SECRET = (process.env.PROVISION_CALLBACK_SECRET ??= setupRng.hex(24));
const RESEND_SECRET = (process.env.RESEND_WEBHOOK_SECRET ??= `whsec_${setupRng.bytes(24).toString("base64")}`);
process.env.PROVIDER_MODE ??= "sandbox";
process.env.SANDBOX_LATENCY_MS ??= "0";

/** Every value an answer must never echo: env values of *SECRET*, *TOKEN*, *KEY* (8+ characters). */
const SECRETS = Object.entries(process.env)
  .filter(([name, value]) => /SECRET|TOKEN|KEY/i.test(name) && value !== undefined && value.length >= 8)
  .map(([, value]) => value!);

// Function logs (one JSON line each) go to a file, as with npm start.
const logFile = join(tmpdir(), `brain-fuzz-${process.pid}.log`);
for (const level of ["log", "info", "warn", "error", "debug"] as const) {
  console[level] = (...args: unknown[]) =>
    appendFileSync(logFile, `${args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ")}\n`);
}

// ---------------------------------------------------------------------------------------------
// The server: npm start's bridge (scripts/serve.ts), the socket's address as the request's source.

const t = await startEmbeddedBackend({ extraModules: { "fuzzInspect.ts": () => import("./fuzz-inspect.ts") } });
const http = (await import("../convex/http.ts")).default;

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const server = createServer((request, response) => {
  void (async () => {
    try {
      const body = await readBody(request);
      const headers = new Headers();
      for (const [key, value] of Object.entries(request.headers)) {
        if (typeof value === "string") headers.set(key, value);
        else if (Array.isArray(value)) headers.set(key, value.join(", "));
      }
      const method = request.method ?? "GET";
      const ip = request.socket.remoteAddress ?? null;
      // An absolute-form target (`GET http://host/path`) is reduced to its path, as a deployment's
      // front end does (scripts/serve.ts passes it on as is, and convex-test refuses it: a 500 there).
      const target = new URL(request.url ?? "/", "http://127.0.0.1");
      const answer = await t.withRequestMetadata({ ip }).fetch(`${target.pathname}${target.search}`, {
        method,
        headers,
        ...(method === "GET" || method === "HEAD" ? {} : { body: new Uint8Array(body) }),
      });
      const bytes = Buffer.from(await answer.arrayBuffer());
      response.writeHead(answer.status, { ...Object.fromEntries(answer.headers.entries()), "content-length": String(bytes.length) });
      response.end(bytes);
    } catch (error) {
      // As npm start's bridge answers: a failure of the function runner itself is a 500.
      const text = JSON.stringify({ error: { code: "INTERNAL", message: String(error) } });
      response.writeHead(500, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)) });
      response.end(text);
    }
  })();
});
await new Promise<void>((resolve, reject) => {
  server.once("error", reject);
  server.listen(0, "127.0.0.1", () => resolve());
});
const address = server.address();
const port = typeof address === "object" && address ? address.port : 0;
say(`fuzz: seed ${seed}, ${inputCount} inputs against http://127.0.0.1:${port} (function logs: ${logFile})`);

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 over TCP.

type Answer = { status: number; headers: Record<string, string>; body: Buffer };
type RawRequest = { method: string; target: string; headers: [string, string][]; body: Buffer; source: string };

function send(request: RawRequest): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, localAddress: request.source });
    const chunks: Buffer[] = [];
    socket.setTimeout(60_000, () => socket.destroy(new Error("no answer within 60 s")));
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("error", (error) => (chunks.length > 0 ? resolve(parseAnswer(Buffer.concat(chunks))) : reject(error)));
    socket.on("end", () => resolve(parseAnswer(Buffer.concat(chunks))));
    socket.on("connect", () => {
      const head =
        `${request.method} ${request.target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n` +
        `Content-Length: ${request.body.length}\r\n` +
        request.headers.map(([name, value]) => `${name}: ${value}\r\n`).join("") +
        "\r\n";
      socket.write(Buffer.concat([Buffer.from(head, "latin1"), request.body]));
    });
  });
}

function parseAnswer(raw: Buffer): Answer {
  const split = raw.indexOf("\r\n\r\n");
  if (split < 0) return { status: 0, headers: {}, body: raw };
  const [statusLine = "", ...lines] = raw.subarray(0, split).toString("latin1").split("\r\n");
  const status = Number(statusLine.split(" ")[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = raw.subarray(split + 4);
  if (headers["transfer-encoding"]?.includes("chunked")) {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const lineEnd = body.indexOf("\r\n", at);
      if (lineEnd < 0) break;
      const size = parseInt(body.subarray(at, lineEnd).toString("latin1"), 16);
      if (!size) break;
      parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  }
  return { status, headers, body };
}

// ---------------------------------------------------------------------------------------------
// Every document, fingerprinted: Brain's tables and each component's, with scheduled functions.

type Snapshot = Map<string, string>;
const dumpRef = makeFunctionReference<"query", { tables: string[] }, Record<string, Record<string, string>>>("fuzzInspect:dump");
const schema = (await import("../convex/schema.ts")).default;
const rootTables = Object.keys(schema.tables);
/** Rate-limit bookkeeping is not a write the fuzzer counts (issue 11): the rate limiter components. */
const components = embeddedComponents(t).filter((component) => !/rate.?limit/i.test(component.path));

async function snapshot(): Promise<Snapshot> {
  const out: Snapshot = new Map();
  const add = (component: string, dump: Record<string, Record<string, string>>) => {
    for (const [table, rows] of Object.entries(dump)) {
      // Security-event bookkeeping is not counted either: `securityEvents`, and any other table of
      // the suspicious-activity defence named `security…` (its blocks, say).
      if (/^security/i.test(table) || /rate.?limit/i.test(table)) continue;
      for (const [id, fingerprint] of Object.entries(rows)) out.set(`${component}|${table}|${id}`, fingerprint);
    }
  };
  add("app", await t.query(dumpRef, { tables: rootTables }));
  for (const component of components) {
    const ref = `function://${component.path};fuzzInspect:dump` as unknown as typeof dumpRef;
    add(component.path, await t.query(ref, { tables: component.tables }));
  }
  return out;
}

type Change = { key: string; kind: "inserted" | "changed" | "deleted" };
function diff(before: Snapshot, after: Snapshot): Change[] {
  const changes: Change[] = [];
  for (const [key, fingerprint] of after) {
    const old = before.get(key);
    if (old === undefined) changes.push({ key, kind: "inserted" });
    else if (old !== fingerprint) changes.push({ key, kind: "changed" });
  }
  for (const key of before.keys()) if (!after.has(key)) changes.push({ key, kind: "deleted" });
  return changes;
}
/** Appends to the audit log are the record the issue asks for (every admin call, failures included): counted apart. */
const isAuditAppend = (change: Change) => change.kind === "inserted" && change.key.startsWith("app|auditLogs|");

const sameSnapshot = (a: Snapshot, b: Snapshot) => a.size === b.size && diff(a, b).length === 0;

/** Whether a scheduled function is running, or due within 5 s. */
function busy(snap: Snapshot): boolean {
  const soon = Date.now() + 5_000;
  for (const [key, fingerprint] of snap) {
    if (!key.includes("|_scheduled_functions|")) continue;
    const job = JSON.parse(fingerprint) as { state: { kind: string }; scheduledTime: number };
    if (job.state.kind === "inProgress" || (job.state.kind === "pending" && job.scheduledTime <= soon)) return true;
  }
  return false;
}

/** A snapshot once nothing changes between two looks 100 ms apart and nothing is running or about to (at most 30 s). */
async function settled(): Promise<Snapshot> {
  let last = await snapshot();
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const next = await snapshot();
    const quiet = sameSnapshot(last, next) && !busy(next);
    last = next;
    if (quiet) break;
  }
  return last;
}

// ---------------------------------------------------------------------------------------------
// Setup: one signed test checkout provisioned to ready, as npm start does, so real ids exist.

const stripe = new Stripe("sk_test_fuzz");
const sign = (payload: string, secret = STRIPE_SECRET, timestamp?: number) =>
  stripe.webhooks.generateTestHeaderString({ payload, secret, ...(timestamp !== undefined ? { timestamp } : {}) });
const nowSeconds = () => Math.floor(Date.now() / 1000);

function checkoutEvent(eventId: string, sessionId: string, customer: string) {
  return {
    id: eventId,
    object: "event",
    created: nowSeconds(),
    livemode: false,
    type: "checkout.session.completed",
    data: {
      object: {
        id: sessionId,
        object: "checkout.session",
        payment_status: "paid",
        customer,
        customer_details: { email: "fuzz-setup@example.com", name: "Fuzz Setup" },
        metadata: { plan: "starter" },
      },
    },
  };
}

const setupSession = `cs_test_fuzz_${setupRng.hex(8)}`;
const setupEvent = checkoutEvent(`evt_fuzz_${setupRng.hex(8)}`, setupSession, "cus_fuzz_setup");
const setupPayload = JSON.stringify(setupEvent);
const accepted = await send({
  method: "POST",
  target: "/stripe/webhook",
  headers: [
    ["Content-Type", "application/json"],
    ["Stripe-Signature", sign(setupPayload)],
  ],
  body: Buffer.from(setupPayload),
  source: "127.0.0.1",
});
if (accepted.status !== 200) fatal(`the setup checkout was refused: ${accepted.status} ${accepted.body.toString()}`);
type StatusView = { status: string; instanceId: string | null; jobId: string | null };
let view: StatusView | undefined;
const setupDeadline = Date.now() + 120_000;
while (Date.now() < setupDeadline) {
  const answer = await send({
    method: "GET",
    target: `/status?session_id=${setupSession}`,
    headers: [["Accept", "application/json"]],
    body: Buffer.alloc(0),
    source: "127.0.0.1",
  });
  view = JSON.parse(answer.body.toString()) as StatusView;
  if (view.status === "ready" || view.status === "failed") break;
  await new Promise((resolve) => setTimeout(resolve, 100));
}
if (view?.status !== "ready" || !view.instanceId || !view.jobId) fatal(`the setup checkout did not become ready (${view?.status ?? "no answer"})`);

/** Real ids of each table, to be misused as ids of another. */
const ids = await t.run(async (ctx) => {
  const first = async (table: "customers" | "stripeEvents" | "auditLogs" | "notifications" | "healthBatches") =>
    ((await ctx.db.query(table).first())?._id as string | undefined) ?? null;
  return {
    instance: view!.instanceId!,
    job: view!.jobId!,
    customer: await first("customers"),
    stripeEvent: await first("stripeEvents"),
    audit: await first("auditLogs"),
    notification: await first("notifications"),
    healthBatch: await first("healthBatches"),
  };
});
const foreignIds = Object.values(ids).filter((id): id is string => id !== null);

// Quiet: everything the setup scheduled has run (emails, the pools' loops) before fuzzing starts.
let previous = await snapshot();
{
  const quietDeadline = Date.now() + 60_000;
  let stableFor = 0;
  while (stableFor < 4 && Date.now() < quietDeadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const next = await snapshot();
    stableFor = sameSnapshot(previous, next) ? stableFor + 1 : 0;
    previous = next;
  }
  if (stableFor < 4) fatal("the backend did not go quiet within 60 s after the setup checkout");
  // What the setup left scheduled for later (an email a minute on, the deploy step's deadline) would
  // run in the middle of the fuzzing and be counted against whatever input came then: cancelled.
  const cancelled = await t.run(async (ctx) => {
    const pending = (await ctx.db.system.query("_scheduled_functions").collect()).filter((job) => job.state.kind === "pending");
    for (const job of pending) await ctx.scheduler.cancel(job._id);
    return pending.map((job) => job.name);
  });
  if (cancelled.length > 0) say(`fuzz: cancelled the setup's later work: ${cancelled.join(", ")}`);
  previous = await settled();
  const componentPending = [...previous].filter(([key, fingerprint]) => !key.startsWith("app|") && key.includes("|_scheduled_functions|") && fingerprint.includes('"pending"'));
  if (componentPending.length > 0) say(`fuzz: warning: ${componentPending.length} component functions still scheduled; their writes would be counted`);
}
say(`fuzz: setup checkout ready (instance ${ids.instance}, job ${ids.job}); ${previous.size} documents before the first input`);

if (flags.observe !== undefined) {
  for (const [key, fingerprint] of previous) {
    if (key.includes("|_scheduled_functions|") && fingerprint.includes('"pending"')) say(`pending: ${key} ${fingerprint.slice(0, 300)}`);
  }
  const until = Date.now() + Number(flags.observe) * 1000;
  while (Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const next = await snapshot();
    for (const change of diff(previous, next)) say(`${((Date.now() - until) / 1000 + Number(flags.observe)).toFixed(1)} s: ${change.kind} ${change.key}`);
    previous = next;
  }
  server.close();
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// The routes: read off convex/http.ts's router (as tests/openapi.test.ts does); their query
// parameters from docs/openapi.yaml.

type Route = { path: string; prefix: boolean; methods: string[] };
const routeMap = new Map<string, Route>();
for (const [path, method] of http.getRoutes() as [string, string, unknown][]) {
  const prefix = path.endsWith("*");
  const key = prefix ? path.slice(0, -1) : path;
  const route = routeMap.get(key) ?? { path: key, prefix, methods: [] };
  route.methods.push(method);
  routeMap.set(key, route);
}
const routes = [...routeMap.values()];
/** The method each route serves (the router also answers every other method on a known path with 405). */
const ALL_ROUTER_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const servedMethod = (route: Route) => {
  const listed = route.methods.filter((m) => ALL_ROUTER_METHODS.includes(m));
  // A known path's 405 answers are registered too; its real method is the one the doc lists.
  const documented = openapiMethods.get(route.path);
  return documented ?? listed;
};
const PUBLIC = new Set(["/stripe/webhook", "/resend/webhook", "/status", "/provisioning-callback"]);

type Json = Record<string, unknown>;
const openapi = parseYaml(readFileSync(new URL("../docs/openapi.yaml", import.meta.url), "utf8")) as {
  paths: Record<string, Record<string, Json>>;
  components: { parameters: Record<string, Json> };
};
/** Router key (exact path, or the prefix before the first parameter) → documented methods. */
const openapiMethods = new Map<string, string[]>();
/** Router key + method → documented query parameters. */
const queryParams = new Map<string, { name: string; schema: Json }[]>();
for (const [path, item] of Object.entries(openapi.paths)) {
  const key = path.includes("{") ? path.slice(0, path.indexOf("{")) : path;
  for (const [method, operation] of Object.entries(item)) {
    if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
    openapiMethods.set(key, [...(openapiMethods.get(key) ?? []), method.toUpperCase()]);
    const params = ((operation.parameters as Json[] | undefined) ?? [])
      .map((p) => (typeof p.$ref === "string" ? openapi.components.parameters[p.$ref.split("/").pop()!]! : p))
      .filter((p) => p.in === "query")
      .map((p) => ({ name: p.name as string, schema: p.schema as Json }));
    queryParams.set(`${method.toUpperCase()} ${key}`, params);
  }
}
for (const route of routes) if (servedMethod(route).length === 0) fatal(`route ${route.path} has no method`);

// ---------------------------------------------------------------------------------------------
// Bad inputs.

type Input = RawRequest & {
  kind: string;
  /** reject: any 2xx/3xx is a finding. noop: a duplicate Stripe delivery answers 200 and changes nothing. */
  expect: "reject" | "noop";
};

const enc = (text: string) => encodeURIComponent(text);
const CRLF_VALUES = ["a\r\nX-Injected: 1", "a\rb", "a\nb", "\r\n\r\nGET / HTTP/1.1", "a\u0000b"];
const MALFORMED_IDS = [
  "0",
  "-1",
  "null",
  "undefined",
  "%00",
  "%ZZ",
  "..",
  "%2e%2e",
  "..%2f..%2fetc%2fpasswd",
  "%2F",
  "a%2Fb",
  "j".repeat(32),
  "x".repeat(5000),
  "%F0%9F%92%A5",
  "%C3%28",
  "%0d%0aX-Injected:%201",
  "'%20OR%201=1--",
  "%7B%22%24gt%22%3A%22%22%7D",
  "jd7" + "0".repeat(29),
];

/** A wrong id: malformed, or a real id of another table (never `except`, the id the route would take). */
function badId(r: Rng, except?: string): string {
  if (r.chance(0.35)) {
    const real = r.pick(foreignIds.filter((id) => id !== except));
    // A real id of another table, or one nudged a character off.
    if (r.chance(0.5)) return real;
    const at = r.int(real.length);
    return real.slice(0, at) + String.fromCharCode(97 + r.int(26)) + real.slice(at + 1);
  }
  if (r.chance(0.2)) return r.hex(r.int(40) + 1);
  return r.pick(MALFORMED_IDS);
}

function flipBits(data: Buffer, r: Rng, flips = 1 + r.int(4)): Buffer {
  const out = Buffer.from(data);
  if (out.length === 0) return Buffer.from([r.int(256)]);
  for (let i = 0; i < flips; i++) out[r.int(out.length)]! ^= 1 << r.int(8);
  return out;
}

function deepJson(r: Rng): string {
  const depth = 500 + r.int(20_000);
  return r.chance(0.5) ? "[".repeat(depth) + "]".repeat(depth) : '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
}

const INVALID_UTF8 = [Buffer.from([0xc3, 0x28]), Buffer.from([0xff, 0xfe, 0xfd]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf0, 0x28, 0x8c, 0x28])];
function invalidUtf8(r: Rng, around: string): Buffer {
  const at = r.int(around.length + 1);
  return Buffer.concat([Buffer.from(around.slice(0, at)), r.pick(INVALID_UTF8), Buffer.from(around.slice(at))]);
}

function oversize(r: Rng): Buffer {
  const size = (1 + r.int(3)) * 1024 * 1024 + r.int(1024);
  return Buffer.from(`{"pad":"${"A".repeat(size)}"}`);
}

const WRONG_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", "application/json; charset=utf-7", "", "a\u0000b", "*/*"];

/** Bodies that are wrong for any route: not JSON, invalid UTF-8, deep, huge, wrong shapes. */
function badBody(r: Rng, template: string): { body: Buffer; label: string } {
  switch (r.int(9)) {
    case 0:
      return { body: Buffer.from(template.slice(0, r.int(template.length))), label: "truncated" };
    case 1:
      return { body: flipBits(Buffer.from(template), r), label: "bitflip" };
    case 2:
      return { body: invalidUtf8(r, template), label: "invalid-utf8" };
    case 3:
      return { body: Buffer.from(deepJson(r)), label: "deep-json" };
    case 4:
      return { body: r.chance(0.1) ? oversize(r) : Buffer.from(JSON.stringify({ pad: "A".repeat(64 * 1024 + r.int(256 * 1024)) })), label: "large" };
    case 5:
      return { body: Buffer.from(r.pick(["null", "[]", '"text"', "1e400", "true", "{}", '{"__proto__":{"admin":true}}', '{"constructor":{"prototype":{"x":1}}}'])), label: "wrong-shape" };
    case 6:
      return { body: r.bytes(r.int(512)), label: "random-bytes" };
    case 7:
      return { body: Buffer.alloc(0), label: "empty" };
    default:
      return { body: Buffer.from(JSON.stringify(mutateJson(JSON.parse(template) as unknown, r))), label: "mutated-json" };
  }
}

/** A JSON value with one field retyped, removed or swapped for something hostile. */
function mutateJson(value: unknown, r: Rng): unknown {
  if (value === null || typeof value !== "object") {
    return r.pick([null, -1, 1e308, "", "x".repeat(10_000), [], {}, true, "\u0000", "../../etc/passwd", r.pick(foreignIds)]);
  }
  const copy: Json = Array.isArray(value) ? ({ ...value } as Json) : { ...(value as Json) };
  const keys = Object.keys(copy);
  if (keys.length === 0 || r.chance(0.1)) {
    copy[r.pick(["__proto__", "constructor", "$gt", "extra", "id"])] = r.pick([{}, "x", 1]);
    return copy;
  }
  const key = r.pick(keys);
  if (r.chance(0.2)) delete copy[key];
  else copy[key] = mutateJson(copy[key], r);
  return Array.isArray(value) ? Object.values(copy) : copy;
}

function source(r: Rng) {
  return `127.${1 + r.int(254)}.${r.int(256)}.${1 + r.int(254)}`;
}

// Templates the mutations start from.
const callbackTemplate = (jobId: string) =>
  JSON.stringify({ jobId, step: "deployApp", status: "succeeded", runId: "12345", dispatchId: `${jobId}-1`, message: "ok", timings: { build: 1000 } });
const callbackHeader = (body: string, secret = CALLBACK_SECRET, timestamp = nowSeconds()) =>
  `t=${timestamp},v1=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
const svixHeaders = (body: string, secret = RESEND_SECRET, timestamp = nowSeconds(), id = `msg_${rng.hex(8)}`): [string, string][] => {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const signature = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64");
  return [
    ["svix-id", id],
    ["svix-timestamp", String(timestamp)],
    ["svix-signature", `v1,${signature}`],
  ];
};
/** Signed callbacks already sent once: sent again, they are replays. */
const sentCallbacks: { body: string; header: string }[] = [];
/** Validly signed Resend events already sent once. */
const sentResend: { body: string; headers: [string, string][] }[] = [];

function webhookInput(r: Rng): Input {
  const base = { method: "POST", target: "/stripe/webhook", source: source(r), expect: "reject" as const };
  const fresh = checkoutEvent(`evt_fuzz_${r.hex(8)}`, `cs_test_fuzz_${r.hex(8)}`, `cus_fuzz_${r.hex(4)}`);
  const payload = JSON.stringify(fresh);
  const json: [string, string] = ["Content-Type", "application/json"];
  switch (r.int(11)) {
    case 0:
      return { ...base, kind: "webhook.unsigned", headers: [json], body: Buffer.from(payload) };
    case 1:
      return { ...base, kind: "webhook.wrong-secret", headers: [json, ["Stripe-Signature", sign(payload, `whsec_${r.hex(16)}`)]], body: Buffer.from(payload) };
    case 2: {
      // Signed, then the body changed: bit flips or a cut.
      const body = r.chance(0.5) ? flipBits(Buffer.from(payload), r) : Buffer.from(payload.slice(0, r.int(payload.length)));
      return { ...base, kind: "webhook.tampered", headers: [json, ["Stripe-Signature", sign(payload)]], body };
    }
    case 3: {
      const header = sign(payload);
      const broken = r.pick([
        () => flipBits(Buffer.from(header), r).toString("latin1"),
        () => header.replace(/t=\d+/, "t=abc"),
        () => header.replace(/,v1=[0-9a-f]+/, ""),
        () => header.replace(/v1=/, "v0="),
        () => `${header},v1=${"0".repeat(64)}`.replace(/v1=[0-9a-f]{64},/, ""),
        () => "t=1,v1=" + "f".repeat(64),
        () => "x".repeat(8000),
        () => "",
      ])();
      return { ...base, kind: "webhook.bad-signature-header", headers: [json, ["Stripe-Signature", broken]], body: Buffer.from(payload) };
    }
    case 4:
      return { ...base, kind: "webhook.stale", headers: [json, ["Stripe-Signature", sign(payload, STRIPE_SECRET, nowSeconds() - 301 - r.int(100_000))]], body: Buffer.from(payload) };
    case 5:
      return { ...base, kind: "webhook.future", headers: [json, ["Stripe-Signature", sign(payload, STRIPE_SECRET, nowSeconds() + 301 + r.int(100_000))]], body: Buffer.from(payload) };
    case 6:
      // Stripe's own event, delivered again (freshly signed): a duplicate, 200, and nothing changes.
      return { ...base, kind: "webhook.replay", expect: "noop", headers: [json, ["Stripe-Signature", sign(setupPayload)]], body: Buffer.from(setupPayload) };
    case 7: {
      // A replay of an old delivery, signature and all: stale.
      const old = nowSeconds() - 3600 - r.int(86_400);
      return { ...base, kind: "webhook.replay-stale", headers: [json, ["Stripe-Signature", sign(setupPayload, STRIPE_SECRET, old)]], body: Buffer.from(setupPayload) };
    }
    case 8: {
      // Validly signed, but not a usable event: the parser's turn.
      const variants: (() => string)[] = [
        () => "not json {",
        () => deepJson(r),
        () => JSON.stringify({ ...fresh, id: r.pick(["", "evt", "cs_1", 5, null, "evt_" + "x".repeat(10_000)]) }),
        () => JSON.stringify({ ...fresh, type: r.pick(["", null, 1, "checkout.session.completed\u0000"]) }),
        () => JSON.stringify({ ...fresh, data: r.pick([null, {}, { object: null }, { object: [] }, { object: "x" }]) }),
        () => JSON.stringify({ ...fresh, data: { object: { ...fresh.data.object, id: r.pick(["", "evt_x", 1, null]) } } }),
        () => JSON.stringify({ ...fresh, data: { object: { ...fresh.data.object, object: "subscription" } } }),
        () => JSON.stringify({ ...fresh, data: { object: { ...fresh.data.object, payment_status: r.pick(["", 1, null]) } } }),
        () => JSON.stringify({ ...fresh, type: "customer.subscription.updated", data: { object: { id: "sub_x", object: "subscription", status: "bogus", customer: 1 } } }),
        () => JSON.stringify({ ...fresh, created: r.pick(["yesterday", 1.5, null, -1e308]) }),
        () => JSON.stringify({ ...fresh, livemode: "false" }),
        () => JSON.stringify([fresh]),
      ];
      const body = r.chance(0.15) ? invalidUtf8(r, r.pick(variants)()) : Buffer.from(r.pick(variants)());
      return { ...base, kind: "webhook.signed-invalid", headers: [json, ["Stripe-Signature", sign(body.toString("latin1"))]], body };
    }
    case 9: {
      const { body, label } = badBody(r, payload);
      return { ...base, kind: `webhook.body-${label}`, headers: [["Content-Type", r.pick(WRONG_TYPES)], ["Stripe-Signature", sign(payload)]], body };
    }
    default:
      return { ...base, kind: "webhook.oversize", headers: [json, ["Stripe-Signature", sign(payload)]], body: oversize(r) };
  }
}

function resendInput(r: Rng): Input {
  const base = { method: "POST", target: "/resend/webhook", source: source(r), expect: "reject" as const };
  const body = JSON.stringify({ type: "email.delivered", created_at: new Date().toISOString(), data: { email_id: `re_${r.hex(8)}` } });
  const json: [string, string] = ["Content-Type", "application/json"];
  switch (r.int(6)) {
    case 0:
      return { ...base, kind: "resend.unsigned", headers: [json], body: Buffer.from(body) };
    case 1:
      return { ...base, kind: "resend.wrong-secret", headers: [json, ...svixHeaders(body, `whsec_${r.bytes(24).toString("base64")}`)], body: Buffer.from(body) };
    case 2:
      return { ...base, kind: "resend.tampered", headers: [json, ...svixHeaders(body)], body: flipBits(Buffer.from(body), r) };
    case 3:
      return { ...base, kind: "resend.stale", headers: [json, ...svixHeaders(body, RESEND_SECRET, nowSeconds() - 301 - r.int(100_000))], body: Buffer.from(body) };
    case 4: {
      // Validly signed but malformed, or validly signed for no email Brain sent (answers 200 per the
      // docs: "unknown emails answer 200 and change nothing"): replayed once sent.
      if (sentResend.length > 0 && r.chance(0.5)) {
        const again = r.pick(sentResend);
        return { ...base, kind: "resend.replay", expect: "noop", headers: [json, ...again.headers], body: Buffer.from(again.body) };
      }
      const bad = r.pick([() => "not json", () => JSON.stringify({ type: "", data: {} }), () => JSON.stringify({ type: "email.bounced", data: { email_id: "" } }), () => deepJson(r)])();
      return { ...base, kind: "resend.signed-invalid", headers: [json, ...svixHeaders(bad)], body: Buffer.from(bad) };
    }
    default: {
      const headers = svixHeaders(body);
      if (sentResend.length < 20) sentResend.push({ body, headers });
      return { ...base, kind: "resend.unknown-email", expect: "noop", headers: [json, ...headers], body: Buffer.from(body) };
    }
  }
}

function callbackInput(r: Rng): Input {
  const base = { method: "POST", target: "/provisioning-callback", source: source(r), expect: "reject" as const };
  const jobId = r.chance(0.5) ? ids.job : badId(r);
  const body = callbackTemplate(jobId);
  const json: [string, string] = ["Content-Type", "application/json"];
  switch (r.int(8)) {
    case 0:
      return { ...base, kind: "callback.unsigned", headers: [json], body: Buffer.from(body) };
    case 1: {
      const header = callbackHeader(body);
      const broken = r.pick([
        () => flipBits(Buffer.from(header), r).toString("latin1"),
        () => header.replace(/t=\d+/, "t=x"),
        () => header.replace(/v1=/, "v2="),
        () => "t=1,v1=" + "0".repeat(63),
        () => "t=" + "9".repeat(400) + ",v1=" + "0".repeat(64),
        () => "=,=,=",
        () => "t=1,t=2,v1=" + "a".repeat(64),
      ])();
      return { ...base, kind: "callback.bad-signature-header", headers: [json, ["X-Brain-Signature", broken]], body: Buffer.from(body) };
    }
    case 2:
      return { ...base, kind: "callback.wrong-secret", headers: [json, ["X-Brain-Signature", callbackHeader(body, r.hex(24))]], body: Buffer.from(body) };
    case 3:
      return { ...base, kind: "callback.tampered", headers: [json, ["X-Brain-Signature", callbackHeader(body)]], body: flipBits(Buffer.from(body), r) };
    case 4:
      return { ...base, kind: "callback.stale", headers: [json, ["X-Brain-Signature", callbackHeader(body, CALLBACK_SECRET, nowSeconds() - 301 - r.int(100_000))]], body: Buffer.from(body) };
    case 5: {
      // Validly signed reports that must still be refused: for a job that is not waiting (the
      // setup's job is done), an unknown or foreign id, or a malformed body.
      const variants = [
        () => body,
        () => callbackTemplate(badId(r)),
        () => JSON.stringify({ ...JSON.parse(body), step: "validate" }),
        () => JSON.stringify({ ...JSON.parse(body), status: "progress", progress: { name: "x".repeat(200), state: "started" } }),
        () => JSON.stringify({ ...JSON.parse(body), status: "progress", progress: { name: "build", state: "started" } }),
        () => JSON.stringify(mutateJson(JSON.parse(body), r)),
        () => deepJson(r),
        () => "not json",
      ];
      const signed = r.pick(variants)();
      const header = callbackHeader(signed);
      if (sentCallbacks.length < 20) sentCallbacks.push({ body: signed, header });
      return { ...base, kind: "callback.signed-refused", headers: [json, ["X-Brain-Signature", header]], body: Buffer.from(signed) };
    }
    case 6: {
      if (sentCallbacks.length === 0) return { ...base, kind: "callback.unsigned", headers: [json], body: Buffer.from(body) };
      const again = r.pick(sentCallbacks);
      return { ...base, kind: "callback.replay", headers: [json, ["X-Brain-Signature", again.header]], body: Buffer.from(again.body) };
    }
    default: {
      const { body: bad, label } = badBody(r, body);
      return { ...base, kind: `callback.body-${label}`, headers: [["Content-Type", r.pick(WRONG_TYPES)], ["X-Brain-Signature", callbackHeader(bad.toString("latin1"))]], body: bad };
    }
  }
}

function statusInput(r: Rng): Input {
  const base = { method: "GET", source: source(r), body: Buffer.alloc(0), expect: "reject" as const };
  const accept: [string, string] = ["Accept", r.pick(["application/json", "text/html", "*/*", "application/json\u0000"])];
  const value = r.pick([
    () => "",
    () => badId(r),
    () => `cs_test_${r.hex(12)}`,
    () => enc(setupSession) + "%00",
    () => enc(setupSession.toUpperCase()),
    () => "cs_" + "a".repeat(10_000),
    () => "%0d%0aSet-Cookie:%20x=1",
    () => enc("<script>alert(1)</script>"),
  ])();
  const target = r.pick([
    `/status?session_id=${value}`,
    `/status?session_id=${value}&session_id=${enc(setupSession)}`.replace(/session_id=&/, "session_id=x&"),
    "/status",
    "/status?",
    `/status?session_id[]=${enc(setupSession)}`,
    `/status/${enc(setupSession)}`,
    `/status/../admin/circuits`,
  ]);
  return { ...base, kind: "status.bad-session", target, headers: [accept] };
}

const TOKEN_VARIANTS = (r: Rng): [string, string][] =>
  r.pick<[string, string][]>([
    [],
    [["Authorization", ""]],
    [["Authorization", "Bearer"]],
    [["Authorization", "Bearer "]],
    [["Authorization", `Bearer ${r.hex(24)}`]],
    [["Authorization", `Bearer ${ADMIN_TOKEN.slice(0, -1)}`]],
    [["Authorization", `Bearer ${ADMIN_TOKEN}x`]],
    [["Authorization", `Bearer ${ADMIN_TOKEN.toUpperCase() === ADMIN_TOKEN ? ADMIN_TOKEN.toLowerCase() + "Z" : ADMIN_TOKEN.toUpperCase()}`]],
    [["Authorization", `bearer ${r.hex(4)}`]],
    [["Authorization", `Basic ${Buffer.from(`admin:${r.hex(8)}`).toString("base64")}`]],
    [["Authorization", `Bearer ${"A".repeat(10_000)}`]],
    [["Authorization", `Bearer ${r.hex(8)}\u0000`]],
    [["X-Admin-Token", r.hex(24)]],
  ]);

/** The real id a prefix route would act on (a valid request): never sent there with the right token. */
const realIdFor = (route: Route) =>
  ["/instance-health/", "/deprovision/"].includes(route.path) ? ids.instance : ["/retry-provisioning/", "/cancel-provisioning/", "/admin/jobs/"].includes(route.path) ? ids.job : undefined;

function adminRoutes() {
  return routes.filter((route) => !PUBLIC.has(route.path));
}

function adminInput(r: Rng): Input {
  const route = r.pick(adminRoutes());
  const method = r.pick(servedMethod(route));
  const base = { method, source: source(r), expect: "reject" as const };
  const idPath = route.prefix ? `${route.path}${enc(badId(r, realIdFor(route)))}${route.path === "/admin/deliveries/" ? "/redeliver" : ""}` : route.path;
  const withToken: [string, string] = ["Authorization", `Bearer ${ADMIN_TOKEN}`];
  switch (r.int(4)) {
    case 0:
      // No token, or a wrong one.
      return { ...base, kind: "admin.bad-token", target: idPath, headers: TOKEN_VARIANTS(r), body: method === "GET" ? Buffer.alloc(0) : Buffer.from("{}") };
    case 1: {
      // The right token, a wrong id in the path: malformed, foreign, traversal.
      if (!route.prefix) return adminBadQuery(r, route, method, withToken);
      // (An unencoded `../` is resolved by the URL parser before routing: with the right token that
      // is just a request for another admin route, so only encoded traversal is sent here.)
      const id = r.pick([() => badId(r, realIdFor(route)), () => "", () => `${enc(r.pick(foreignIds))}/x`, () => "..%2F..%2Fadmin%2Fcircuits", () => "%2e%2e%2f%2e%2e%2fadmin%2fcircuits"])();
      const suffix = route.path === "/admin/deliveries/" ? r.pick(["/redeliver", "/redeliver/x", "", "/REDELIVER"]) : "";
      return { ...base, kind: "admin.bad-id", target: `${route.path}${id}${suffix}`, headers: [withToken], body: Buffer.alloc(0) };
    }
    case 2:
      return adminBadQuery(r, route, method, withToken);
    default: {
      // The right token, a bad body.
      if (method === "GET") return adminBadQuery(r, route, method, withToken);
      const template = route.path === "/admin/maintenance" ? JSON.stringify({ from: Date.now(), until: Date.now() + 3_600_000, reason: "fuzz" }) : JSON.stringify({ dryRun: true });
      let { body, label } = badBody(r, template);
      // An empty body is a dry run on the admin POST routes that take { dryRun }: a valid request.
      if (label === "empty" || (label === "wrong-shape" && body.toString() === "{}")) body = Buffer.from("{,}");
      if (label === "mutated-json" && route.path !== "/admin/maintenance") body = Buffer.from(JSON.stringify({ dryRun: r.pick(["false", 0, null, [], {}]), extra: 1 }));
      if (label === "mutated-json" && route.path === "/admin/maintenance") {
        body = Buffer.from(JSON.stringify(r.pick([{ from: Date.now(), until: Date.now() - 1, reason: "x" }, { from: "now", until: 1, reason: "" }, { from: Date.now(), until: Date.now() + 1000, reason: "x".repeat(501) }, { from: Date.now(), until: Date.now() + 1000, reason: "x", instanceId: r.pick(foreignIds.filter((id) => id !== ids.instance)) }])));
      }
      if (route.prefix) {
        // Prefix routes take no body: a bad id carries the input.
        return { ...base, kind: `admin.body-${label}`, target: `${route.path}${enc(badId(r, realIdFor(route)))}`, headers: [withToken, ["Content-Type", r.pick(WRONG_TYPES)]], body };
      }
      return { ...base, kind: `admin.body-${label}`, target: route.path, headers: [withToken, ["Content-Type", r.pick(["application/json", ...WRONG_TYPES])]], body };
    }
  }
}

/** The right token and a query parameter outside its documented schema (GET routes). */
function adminBadQuery(r: Rng, route: Route, method: string, withToken: [string, string]): Input {
  const params = queryParams.get(`${method} ${route.path}`) ?? [];
  const base = { method, source: source(r), expect: "reject" as const, headers: [withToken], body: Buffer.alloc(0) };
  if (params.length === 0 || route.prefix) {
    // Nothing to break in the query: a wrong method instead.
    return { ...base, method: r.pick(["PUT", "PATCH", "DELETE", ...ALL_ROUTER_METHODS].filter((m) => !servedMethod(route).includes(m))), kind: "admin.wrong-method", target: route.prefix ? `${route.path}${enc(badId(r, realIdFor(route)))}` : route.path };
  }
  const param = r.pick(params);
  const schema = param.schema;
  const enumValues = (schema.enum as string[] | undefined) ?? (typeof schema.$ref === "string" ? ["queued", "running", "succeeded", "failed"] : undefined);
  let value: string;
  if (enumValues) value = r.pick(["bogus", "", enumValues[0]!.toUpperCase(), `${enumValues[0]}%00`, "%0d%0a"]);
  else if (schema.type === "integer") {
    // Just outside the documented range, and values that are no integer at all.
    const outside = [
      ...(typeof schema.minimum === "number" ? [String(schema.minimum - 1)] : ["-1"]),
      ...(typeof schema.maximum === "number" ? [String(schema.maximum + 1)] : []),
    ];
    value = r.pick([...outside, "abc", "1.5", "1e999", "9".repeat(40), "", "%00"]);
  }
  else if (param.name === "cursor") value = r.pick(["x", enc("{}"), "A".repeat(5000), enc(badId(r))]);
  else if (/Id$/.test(param.name)) value = enc(badId(r, param.name === "instanceId" ? ids.instance : param.name === "jobId" ? ids.job : undefined));
  else if (param.name === "plan") value = r.pick(["UPPER", "a".repeat(41), "%20", "..%2f"]);
  else value = r.pick(["yesterday", "not-a-date", "2026-13-45", "%00", "1e", "NaN"]);
  return { ...base, kind: "admin.bad-query", target: `${route.path}?${param.name}=${value}` };
}

const UNKNOWN_METHODS = ["PROPFIND", "TRACE", "OPTIONS", "HEAD", "MKCOL", "PURGE", "SEARCH", "LINK", "FOO", "get", "G ET"];

function methodInput(r: Rng): Input {
  const route = r.pick(routes);
  const method = r.chance(0.5) ? r.pick(UNKNOWN_METHODS) : r.pick(ALL_ROUTER_METHODS.filter((m) => !servedMethod(route).includes(m)));
  const target = route.prefix ? `${route.path}${enc(badId(r, realIdFor(route)))}` : route.path;
  // HEAD is GET without the body: with the right token on an admin GET route it is a valid read.
  const headers: [string, string][] = method !== "HEAD" && r.chance(0.5) ? [["Authorization", `Bearer ${ADMIN_TOKEN}`]] : [];
  return { method, target, headers, body: Buffer.alloc(0), source: source(r), kind: "method.unknown", expect: "reject" };
}

function pathInput(r: Rng): Input {
  const route = r.pick(routes);
  const target = r.pick([
    () => `${route.path}/../../etc/passwd`,
    () => `/${r.hex(6)}`,
    () => `${route.path.replace(/\/$/, "")}%2F..%2F${r.hex(3)}`,
    () => `//${route.path}`,
    () => `${route.path.toUpperCase()}`,
    () => `${route.path}%00`,
    () => `/${"a/".repeat(500)}`,
    () => `/%2e%2e/%2e%2e/${r.hex(4)}`,
    () => `http://evil.example${route.path}`,
    () => "*",
    () => `/${"x".repeat(9000)}`,
    () => `${route.path}?${"a=1&".repeat(2000)}`,
  ])();
  // The right token only on paths that cannot name a route (a known path with a junk query, or
  // one the URL parser folds back onto a route, would be a valid request).
  const folds = new URL(target, "http://h").pathname === route.path || target.includes("?") || target.startsWith("http");
  const headers: [string, string][] = !folds && r.chance(0.5) ? [["Authorization", `Bearer ${ADMIN_TOKEN}`]] : [];
  return { method: r.pick(["GET", "POST"]), target, headers, body: Buffer.alloc(0), source: source(r), kind: "path.unknown", expect: "reject" };
}

function protocolInput(r: Rng): Input {
  const route = r.pick(routes);
  const method = r.pick(servedMethod(route));
  const target = route.prefix ? `${route.path}${enc(badId(r, realIdFor(route)))}` : route.path === "/status" ? `/status?session_id=${enc(badId(r))}` : route.path;
  const base = { method, target, source: source(r), body: Buffer.alloc(0), expect: "reject" as const };
  switch (r.int(4)) {
    case 0:
      // CR/LF/NUL inside a header value: Node's parser refuses it (400) before Brain sees it.
      return { ...base, kind: "proto.header-injection", headers: [[r.pick(["X-Forwarded-For", "Authorization", "Stripe-Signature", "Accept", "X-Brain-Signature"]), r.pick(CRLF_VALUES)]] };
    case 1:
      // One overlong header, or very many: refused (431) before Brain sees it.
      return r.chance(0.5)
        ? { ...base, kind: "proto.overlong-header", headers: [["X-Fuzz", "A".repeat(17_000 + r.int(50_000))]] }
        : { ...base, kind: "proto.many-headers", headers: Array.from({ length: 2500 }, (_, i): [string, string] => [`X-F${i}`, "1"]) };
    case 2:
      // A forged source address: never believed (the socket's address is the source), and the
      // request is still refused for what it is.
      return { ...base, kind: "proto.forwarded-for", headers: [["X-Forwarded-For", "10.0.0.1"], ["X-Real-IP", "10.0.0.1"], ["Forwarded", "for=10.0.0.1"]], body: method === "GET" ? Buffer.alloc(0) : Buffer.from("{}") };
    default:
      return { ...base, kind: "proto.wrong-content-type", headers: [["Content-Type", r.pick(WRONG_TYPES)]], body: method === "GET" ? Buffer.alloc(0) : invalidUtf8(r, "{}") };
  }
}

const GENERATORS: [number, (r: Rng) => Input][] = [
  [22, webhookInput],
  [8, resendInput],
  [14, callbackInput],
  [8, statusInput],
  [26, adminInput],
  [7, methodInput],
  [7, pathInput],
  [8, protocolInput],
];
const totalWeight = GENERATORS.reduce((sum, [w]) => sum + w, 0);
function generate(r: Rng): Input {
  let roll = r.float() * totalWeight;
  for (const [weight, make] of GENERATORS) {
    roll -= weight;
    if (roll < 0) return make(r);
  }
  return GENERATORS[0]![1](r);
}

// ---------------------------------------------------------------------------------------------
// Checking each answer.

const STACK = [/\n\s+at [^\n]+:\d+:\d+/, /\bat [\w$.<>]+ \((?:file:\/\/)?\/[^)]*:\d+:\d+\)/, /Error:[^\n]*\s\/(?:work|home|usr|tmp|node_modules|convex|scripts)\/[^\s]*\.(?:ts|js|mjs)/];

function leakIn(answer: Answer): string | null {
  const text = answer.body.toString("latin1") + "\n" + Object.values(answer.headers).join("\n");
  for (const secret of SECRETS) if (text.includes(secret)) return "a secret value from the environment";
  if (text.includes("whsec_")) return "whsec_";
  for (const pattern of STACK) if (pattern.test(text)) return `a stack trace (${pattern.source})`;
  return null;
}

const byStatus: Record<string, number> = {};
const byKind: Record<string, Record<string, number>> = {};
let server5xx = 0;
let writes = 0;
let leaks = 0;
let acceptedBad = 0;
let audited = 0;
const findings: string[] = [];
const note = (line: string) => {
  if (findings.length < 50) findings.push(line);
};
const describeInput = (n: number, input: Input) =>
  `#${n} ${input.kind} ${input.method} ${input.target.slice(0, 120)}${input.target.length > 120 ? "…" : ""} (${input.body.length} bytes)`;

const started = Date.now();
for (let n = 1; n <= inputCount; n++) {
  const input = generate(rng);
  let answer: Answer;
  try {
    answer = await send(input);
  } catch (error) {
    answer = { status: 0, headers: {}, body: Buffer.from(String(error)) };
  }
  const code = String(answer.status);
  byStatus[code] = (byStatus[code] ?? 0) + 1;
  (byKind[input.kind] ??= {})[code] = (byKind[input.kind]![code] ?? 0) + 1;
  if (answer.status >= 500 || answer.status === 0) {
    server5xx++;
    note(`5xx: ${describeInput(n, input)} → ${answer.status} ${answer.body.toString().slice(0, 300)}`);
  }
  if (answer.status >= 200 && answer.status < 400 && input.expect === "reject") {
    acceptedBad++;
    note(`accepted: ${describeInput(n, input)} → ${answer.status} ${answer.body.toString().slice(0, 300)}`);
  }
  const leak = leakIn(answer);
  if (leak) {
    leaks++;
    note(`leak (${leak}): ${describeInput(n, input)} → ${answer.status}`);
  }
  // Anything an answer of 2xx/3xx set going (a duplicate's processing, say) is let run to its end
  // first, so that what it changes is counted against this input and not the next.
  const after = answer.status >= 200 && answer.status < 400 ? await settled() : await snapshot();
  const changes = diff(previous, after);
  previous = after;
  const counted = changes.filter((change) => !isAuditAppend(change));
  audited += changes.length - counted.length;
  if (counted.length > 0) {
    writes += counted.length;
    note(`writes: ${describeInput(n, input)} → ${answer.status}: ${counted.slice(0, 5).map((c) => `${c.kind} ${c.key}`).join(", ")}`);
  }
  if (flags.verbose) say(`${describeInput(n, input)} → ${answer.status}${counted.length ? ` (${counted.length} writes)` : ""}`);
  if (n % 1000 === 0) say(`fuzz: ${n}/${inputCount} inputs, ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

server.close();
for (const line of findings) say(`finding: ${line}`);
if (flags.verbose) for (const [kind, counts] of Object.entries(byKind).sort()) say(`kind ${kind}: ${JSON.stringify(counts)}`);
say(
  JSON.stringify({
    seed: Number(seed),
    durationMs: Date.now() - started,
    /** 2xx/3xx answers to inputs that should have been refused (findings to investigate). */
    accepted: acceptedBad,
    /** Audit-log appends (every admin call is audited, refusals too): not counted as writes. */
    auditAppends: audited,
    kinds: Object.keys(byKind).length,
  }),
);
say(JSON.stringify({ inputs: inputCount, byStatus, server5xx, writes, leaks }));
process.exit(server5xx + writes + leaks > 0 ? 1 : 0);
