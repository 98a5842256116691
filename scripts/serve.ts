// `npm start`: Brain offline on its embedded default. The real Convex functions run on
// convex-test in this Node process with sandbox providers; the HTTP routes are served on
// 127.0.0.1:$PORT. It sends itself a signed test checkout, prints progress until the
// instance is ready, then keeps serving (or exits with --once, or when CI=true). The crons in
// convex/crons.ts run on real timers meanwhile, and it prints each change of an instance's
// confirmed health and each incident; --outage makes the demo instance's site fail its health probes.
//
//   npm start -- [--once] [--port N] [--latency MS] [--fail <step|operation>:<transient|rate_limited|permanent>:<times>]
//                [--outage <probes>]
import { randomBytes } from "node:crypto";
import { appendFileSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import Stripe from "stripe";
import { internal } from "../convex/_generated/api.js";
import { describeSchedule } from "./cron-runner.ts";
import { startEmbeddedBackend, startEmbeddedCrons } from "./embedded-backend.ts";
import { watchHealth } from "./health-watch.ts";

const { values: flags } = parseArgs({
  options: {
    once: { type: "boolean", default: false },
    port: { type: "string" },
    latency: { type: "string" },
    fail: { type: "string", multiple: true, default: [] },
    outage: { type: "string" },
    timeout: { type: "string", default: "120" },
  },
});
const once = flags.once || process.env.CI === "true";
const port = Number(flags.port ?? process.env.PORT ?? 8787);
if (!Number.isInteger(port) || port < 0 || port > 65535) fatal(`invalid port ${flags.port ?? process.env.PORT}`);

type FaultKind = "transient" | "rate_limited" | "permanent";
const faults = flags.fail.map((spec) => {
  const [operation, kind, times] = spec.split(":");
  if (!operation || !["transient", "rate_limited", "permanent"].includes(kind ?? "") || !Number(times)) {
    fatal(`--fail expects <step|operation>:<transient|rate_limited|permanent>:<times>, got "${spec}"`);
  }
  return { operation, kind: kind as FaultKind, times: Number(times) };
});
const outageProbes = flags.outage === undefined ? undefined : Number(flags.outage);
if (outageProbes !== undefined && !(Number.isInteger(outageProbes) && outageProbes > 0)) {
  fatal(`--outage expects the number of health probes the sites fail, got "${flags.outage}"`);
}

// Function logs (one JSON line each) go to a file so the console shows progress.
const logFile = join(tmpdir(), `brain-offline-${process.pid}.log`);
for (const level of ["log", "info", "warn", "error", "debug"] as const) {
  console[level] = (...args: unknown[]) =>
    appendFileSync(logFile, `${args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ")}\n`);
}
const say = (line: string) => process.stdout.write(`${line}\n`);
function fatal(message: string): never {
  process.stderr.write(`brain: ${message}\n`);
  process.exit(1);
}

// The embedded default: sandbox providers and generated secrets, unless the environment says otherwise.
process.env.PROVIDER_MODE ??= "sandbox";
process.env.STRIPE_WEBHOOK_SECRET ??= `whsec_offline_${randomBytes(18).toString("hex")}`;
process.env.ADMIN_API_TOKEN ??= randomBytes(24).toString("hex");
if (flags.latency !== undefined) process.env.SANDBOX_LATENCY_MS = flags.latency;
process.env.SANDBOX_LATENCY_MS ??= "300";
// Shorter than production's (300000, 30000, 600000) so the demo shows a health change within a
// couple of minutes; the environment's values win.
const HEALTH_DEMO_DEFAULTS = { HEALTH_CHECK_INTERVAL_MS: "60000", HEALTH_CONFIRM_INTERVAL_MS: "5000", ALERT_AFTER_MS: "60000" };
const healthSettings = Object.entries(HEALTH_DEMO_DEFAULTS).map(([key, value]) => {
  const fromEnvironment = process.env[key] !== undefined;
  process.env[key] ??= value;
  return `${key}=${process.env[key]} (${fromEnvironment ? "from the environment" : "demo default"})`;
});

const t = await startEmbeddedBackend();

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
      // The socket's address is the request's source, as Convex reports a client's (never a
      // forwarding header): rate limits and blocks key on it (docs/security.md).
      const answer = await t.withRequestMetadata({ ip: request.socket.remoteAddress ?? null }).fetch(request.url ?? "/", {
        method,
        headers,
        ...(method === "GET" || method === "HEAD" ? {} : { body: new Uint8Array(body) }),
      });
      response.writeHead(answer.status, Object.fromEntries(answer.headers.entries()));
      response.end(Buffer.from(await answer.arrayBuffer()));
    } catch (error) {
      response.writeHead(500, { "content-type": "application/json" });
      response.end(JSON.stringify({ error: { code: "INTERNAL", message: String(error) } }));
    }
  })();
});

await new Promise<void>((resolve, reject) => {
  server.once("error", reject);
  server.listen(port, "127.0.0.1", () => resolve());
});
const address = server.address();
const base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : port}`;
// With named tokens set (ADMIN_API_TOKENS wins over ADMIN_API_TOKEN), the first one is shown.
const named = process.env.ADMIN_API_TOKENS?.split(",")[0]?.trim();
const token = named ? named.slice(named.indexOf(":") + 1).trim() : process.env.ADMIN_API_TOKEN;
say(`Brain is running offline on ${base} (sandbox providers, embedded Convex functions)`);
say(`  admin token: ${token}`);
say(`  function logs: ${logFile}`);
say(`  health: ${healthSettings.join(", ")}`);

const errorMessage = (error: unknown) =>
  String((error as { data?: { message?: string } }).data?.message ?? (error as Error).message ?? error).split("\n")[0];

for (const { operation, kind, times } of faults) {
  try {
    await t.mutation(internal.sandbox.injectFault, { operation, kind, times });
  } catch (error) {
    fatal(errorMessage(error));
  }
  say(`  injected fault: ${operation} fails ${times}x (${kind})`);
}

// Each job's first failure is shown here; every failure and skipped run goes to the function logs.
const cronsFailed = new Set<string>();
const crons = await startEmbeddedCrons(t, {
  onError: ({ identifier, functionName }, error) => {
    console.error(JSON.stringify({ cron: identifier, function: functionName, error: errorMessage(error) }));
    if (cronsFailed.has(identifier)) return;
    cronsFailed.add(identifier);
    say(`cron "${identifier}" failed: ${errorMessage(error)} (later failures only in the function logs)`);
  },
  onSkip: ({ identifier }) => console.warn(JSON.stringify({ cron: identifier, skipped: "previous run still going" })),
  onInvalid: (identifier, error) => say(`  cron "${identifier}" is not run offline: ${errorMessage(error)}`),
});
const healthCron = crons.jobs.find((job) => job.functionName === "monitoring:runHealthChecks");
say(
  `  crons: ${crons.jobs.length} jobs from convex/crons.ts on real timers` +
    (healthCron ? `, health checks ${describeSchedule(healthCron.schedule)}` : ", none runs health checks yet"),
);

// A signed test checkout, exactly as Stripe would deliver it.
const sessionId = `cs_test_offline_${randomBytes(8).toString("hex")}`;
const event = {
  id: `evt_offline_${randomBytes(8).toString("hex")}`,
  object: "event",
  created: Math.floor(Date.now() / 1000),
  livemode: false,
  type: "checkout.session.completed",
  data: {
    object: {
      id: sessionId,
      object: "checkout.session",
      payment_status: "paid",
      customer: "cus_offline_demo",
      customer_details: { email: "demo@example.com", name: "Demo Customer" },
      metadata: { plan: "starter" },
    },
  },
};
const payload = JSON.stringify(event);
const signature = new Stripe("sk_test_offline").webhooks.generateTestHeaderString({
  payload,
  secret: process.env.STRIPE_WEBHOOK_SECRET,
});
const started = Date.now();
const delivered = await fetch(`${base}/stripe/webhook`, {
  method: "POST",
  headers: { "content-type": "application/json", "Stripe-Signature": signature },
  body: payload,
});
if (delivered.status !== 200) fatal(`the test checkout was refused: ${delivered.status} ${await delivered.text()}`);
const statusUrl = `${base}/status?session_id=${sessionId}`;
say(`Sent a signed test checkout (event ${event.id})`);
say(`  status page: ${statusUrl}`);

type Status = {
  status: string;
  progress: { currentStep: number; totalSteps: number; percent: number };
  steps: { name: string; status: string; attempts: number; lastError?: { message: string } }[];
  instanceUrl?: string;
  jobId: string | null;
  instanceId: string | null;
  error?: { step: string; class: string; message: string };
};

const deadline = started + Number(flags.timeout) * 1000;
let last = "";
let view: Status | undefined;
while (Date.now() < deadline) {
  const answer = await fetch(statusUrl, { headers: { Accept: "application/json" } });
  if (answer.status === 429) {
    // Over the status page's rate limit (RATE_LIMIT_STATUS_*): wait as told, like any client.
    await new Promise((resolve) => setTimeout(resolve, Number(answer.headers.get("retry-after") ?? 1) * 1000));
    continue;
  }
  view = (await answer.json()) as Status;
  const active = view.steps.filter((s) => ["running", "retrying", "waiting"].includes(s.status));
  const line =
    `[${String(view.progress.percent).padStart(3)}%] ${view.progress.currentStep}/${view.progress.totalSteps} ${view.status}` +
    (active.length ? `  ${active.map((s) => `${s.name} ${s.status}${s.attempts > 1 ? ` (attempt ${s.attempts})` : ""}`).join(", ")}` : "") +
    (view.status === "ready" && view.instanceUrl ? `  ${view.instanceUrl}` : "");
  if (line !== last) say((last = line));
  if (view.status === "ready" || view.status === "failed") break;
  await new Promise((resolve) => setTimeout(resolve, 100));
}

const seconds = ((Date.now() - started) / 1000).toFixed(1);
if (view?.status === "ready") {
  say(`Ready in ${seconds} s: instance ${view.instanceId}, job ${view.jobId}`);
} else if (view?.status === "failed") {
  say(`Provisioning failed after ${seconds} s: ${view.error?.step} (${view.error?.class}): ${view.error?.message}`);
} else {
  say(`Not ready after ${flags.timeout} s (status ${view?.status ?? "unknown"})`);
}
if (outageProbes !== undefined && view?.status === "ready" && view.instanceId) {
  await t.mutation(internal.sandbox.injectFault, {
    operation: "probeSite",
    kind: "transient",
    times: outageProbes,
    message: "sandbox outage (npm start --outage)",
    instanceId: view.instanceId,
  });
  say(`Outage: instance ${view.instanceId}'s site fails its next ${outageProbes} health probes (sandbox fault probeSite), then answers again`);
}

say("Try:");
say(`  curl -s '${statusUrl}' -H 'Accept: application/json'`);
if (view?.instanceId) say(`  curl -s ${base}/instance-health/${view.instanceId} -H 'Authorization: Bearer ${token}'`);
if (view?.jobId) say(`  curl -s -X POST ${base}/retry-provisioning/${view.jobId} -H 'Authorization: Bearer ${token}'`);
if (view?.instanceId) {
  // The tenant's lifecycle (docs/lifecycle.md): its forwarded Stripe events, and deprovisioning it.
  say(`  curl -s '${base}/admin/deliveries?instanceId=${view.instanceId}' -H 'Authorization: Bearer ${token}'`);
  say(`  curl -s -X POST ${base}/deprovision/${view.instanceId} -H 'Authorization: Bearer ${token}'`);
}
// The fleet health routes, listed once they are served.
for (const path of ["/admin/health", "/admin/incidents?status=open"]) {
  const answer = await t.fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  if (answer.status !== 404) say(`  curl -s '${base}${path}' -H 'Authorization: Bearer ${token}'`);
}

function shutdown(code: number): never {
  void crons.stop();
  healthWatch?.stop();
  server.close();
  process.exit(code);
}

let healthWatch: { stop(): void } | undefined;
if (once) shutdown(view?.status === "ready" ? 0 : 1);
healthWatch = await watchHealth(t, say);
say(
  healthCron
    ? `Serving until Ctrl-C. Health changes and incidents are printed below as the checks run (${describeSchedule(healthCron.schedule)}).`
    : "Serving until Ctrl-C.",
);
process.on("SIGINT", () => shutdown(0));
process.on("SIGTERM", () => shutdown(0));
