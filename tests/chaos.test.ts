// The chaos suite (issue 4): one row per failure a real deployment sees, each run on the
// sandbox providers (fake timers, simulated time) and live against the provider fakes (real
// timers, the real SDKs), and each ending with the same invariants, checked by one function:
//   1. every paid checkout ends with exactly one active instance, or a failed job whose
//      partial resources are gone (compensation ran);
//   2. no resource exists twice, no Brain-tagged resource outlives its instance, and no
//      Brain-tagged Stripe webhook endpoint exists at all (no step makes one: Brain keeps one
//      platform webhook and forwards each tenant's events; older ones are retired orphans);
//   3. no job is left running or queued, and no step of a finished job is still in flight;
//   4. the audit log holds every transition: job.created, a dispatch record (step.started or
//      the step.retry_scheduled that queued it) for every attempt
//      recorded on the job's steps, a job.retried per manual retry, the compensation, and a
//      terminal job.succeeded / job.failed matching the job.
// The tenant-lifecycle rows (LIFECYCLE_ROWS: suspension, resume, deprovisioning,
// reconciliation, forwarding) end instead with checkLifecycleInvariants, in the same spirit:
// an instance there has several jobs and may end suspended or deleted.
import type { WorkId } from "@convex-dev/workpool";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Doc, Id } from "../convex/_generated/dataModel";
import { loadConfig } from "../convex/lib/config";
import type { SubscriptionStatus } from "../convex/lib/validators";
import { nextLifecycleJob } from "../convex/model/lifecycleRules";
import { resourceName } from "../convex/model/steps";
import { FAKE_CREDENTIALS, startFakes, type Fakes } from "./fakes";
import { startTenantFake, type TenantFake } from "./fakes/tenant";
import {
  adminHeaders,
  checkoutEvent,
  drain,
  elapse,
  signedStripeRequest,
  setupBackend,
  statusOf,
  subscriptionEvent,
  type CheckoutOptions,
  type StatusBody,
  type TestBackend,
} from "./harness";

type ModeName = "sandbox" | "live";
type Job = Doc<"provisioningJobs">;
type StepState = Job["steps"][number];
type StepName = StepState["name"];
type JobId = Id<"provisioningJobs">;

const PREFIX = "brain";
const HOUR_MS = 60 * 60_000;
const DAY_MS = 24 * HOUR_MS;
const LIVE_STEP_STATUSES = new Set(["running", "retrying", "waiting"]);

/** Short retries everywhere and compensation at once, unless a row says otherwise. */
const BASE_ENV = { RETRY_BASE_DELAY_MS: "20", RETRY_MAX_DELAY_MS: "200", RETRY_JITTER: "0", CLEANUP_DELAY_MS: "0" };

// ---------------------------------------------------------------------------------------
// Fault injection, one vocabulary for both modes.

type FaultTarget = "convexProject" | "workosOrg" | "pagesProject" | "configureBackend" | "deployApp";
type Fault =
  | { target: FaultTarget; kind: "transient" | "permanent"; times?: number }
  | { target: FaultTarget; kind: "rate_limited"; times?: number; retryAfterMs: number }
  /** Live: the provider acts, then the connection drops. Sandbox: not expressible (a sandbox fault fires before acting); a transient. */
  | { target: FaultTarget; kind: "lost_response"; times?: number }
  /** Live only: the provider answers this much later (a timeout when over PROVIDER_TIMEOUT_MS). */
  | { target: FaultTarget; kind: "slow"; latencyMs: number; times?: number };

/** The provider write each target step makes, on the live fakes (reads before it are left alone). */
function liveTarget(fakes: Fakes, target: FaultTarget) {
  switch (target) {
    case "convexProject":
      return { fake: fakes.convex, method: "POST", path: /\/create_project$/ };
    case "workosOrg":
      return { fake: fakes.workos, method: "POST", path: /\/organizations$/ };
    case "pagesProject":
      return { fake: fakes.cloudflare, method: "POST", path: /\/pages\/projects$/ };
    case "configureBackend":
      return { fake: fakes.convex, method: "POST", path: /\/update_environment_variables$/ };
    case "deployApp":
      return { fake: fakes.github, method: "POST", path: /\/dispatches$/ };
  }
}

// ---------------------------------------------------------------------------------------
// The per-test harness: the same verbs in both modes.

type Resource = {
  provider: "convex" | "convexDeployment" | "workos" | "cloudflare" | "stripe";
  id: string;
  name: string;
  /** The instance it was made for, when that is a known instance. */
  owner: string | null;
  /** Tagged as Brain's (name prefix, or managedBy metadata): the only ones Brain may touch. */
  brain: boolean;
};

type Harness = {
  mode: ModeName;
  t: TestBackend;
  /** The live fakes (throws in sandbox mode). */
  fakes(): Fakes;
  /** The live tenant apps Brain forwards Stripe events to (lifecycle rows in live mode only; throws otherwise). */
  tenant(): TenantFake;
  inject(fault: Fault): Promise<void>;
  /** Sends a signed checkout event (a fresh paid checkout.session.completed unless told otherwise). */
  checkout(options?: CheckoutOptions): Promise<{ event: ReturnType<typeof checkoutEvent>; sessionId: string; response: Response }>;
  deliver(event: unknown): Promise<Response>;
  /** Lets Brain run (simulated time in sandbox, real time live) until `predicate` holds. */
  waitUntil(
    label: string,
    predicate: () => Promise<boolean>,
    /** Sandbox only: simulated ms between looks, and a factor it grows by after each look. */
    options?: { budgetMs?: number; tickMs?: number; growTick?: number },
  ): Promise<void>;
  /** Until the checkout's status is ready or failed. */
  settle(sessionId: string): Promise<StatusBody>;
  /** Until nothing is in flight: no job running, no step in flight, no compensation due or running. */
  quiesce(): Promise<void>;
  /** Moves the clock on (sandbox: fires whatever falls due; live: Date.now only). */
  jumpClock(ms: number): Promise<void>;
  job(jobId: string): Promise<Job>;
  jobOfSession(sessionId: string): Promise<Job | null>;
  instance(instanceId: string): Promise<Doc<"instances">>;
  resources(): Promise<Resource[]>;
  admin(path: string, init?: { method?: string; body?: unknown }): Promise<{ status: number; body: any }>;
};

/** The status page's status, with the job's error and steps in the message when it is not the expected one. */
function expectStatus(status: StatusBody, expected: StatusBody["status"]) {
  const steps = status.steps.map((s) => `${s.name}:${s.status}/${s.attempts}${s.lastError ? ` (${s.lastError.class}: ${s.lastError.message})` : ""}`);
  expect(status.status, `error ${JSON.stringify(status.error)}; steps ${steps.join(", ")}`).toBe(expected);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const stepOf = (job: Job, name: StepName) => job.steps.find((s) => s.name === name)!;

/**
 * Sandbox: runs scheduled work for `ms` of simulated time, `stepMs` at a time. At the horizon,
 * work in flight still gets some real event-loop turns (with the clock stopped) to get as far
 * as it can without time passing, so small steps do not starve it.
 */
async function runFor(t: TestBackend, ms: number, stepMs: number) {
  const start = Date.now();
  let spareTurns = 0;
  class HorizonReached extends Error {}
  try {
    await t.finishAllScheduledFunctions(() => {
      const elapsed = Date.now() - start;
      if (elapsed < ms) vi.advanceTimersByTime(Math.min(stepMs, ms - elapsed));
      else if (++spareTurns > 20) throw new HorizonReached();
    }, 1_000_000);
  } catch (error) {
    if (!(error instanceof HorizonReached)) throw error;
  }
  // Nothing was running: time still passes (deadlines are wall-clock).
  const left = ms - (Date.now() - start);
  if (left > 0) vi.advanceTimersByTime(left);
}

function createHarness(mode: ModeName, t: TestBackend, fakes: Fakes | undefined, tenant?: TenantFake): Harness {
  const live = (): Fakes => {
    if (!fakes) throw new Error("live fakes are only there in live mode");
    return fakes;
  };
  const deliver = (event: unknown) =>
    t.fetch("/stripe/webhook", signedStripeRequest(event, { timestamp: Math.floor(Date.now() / 1000) }));
  // Live jumpClock: how far Date.now has been moved on from the real clock.
  const realNow = Date.now.bind(Date);
  let clockOffsetMs = 0;

  const h: Harness = {
    mode,
    t,
    fakes: live,
    tenant: () => {
      if (!tenant) throw new Error("the tenant fake is only there for lifecycle rows in live mode");
      return tenant;
    },

    async inject(fault) {
      const times = fault.times ?? 1;
      if (mode === "sandbox") {
        if (fault.kind === "slow") throw new Error("the sandbox cannot slow one operation; use SANDBOX_LATENCY_MS");
        const kind = fault.kind === "lost_response" ? "transient" : fault.kind;
        await t.mutation(internal.sandbox.injectFault, {
          operation: fault.target,
          kind,
          times,
          ...(fault.kind === "rate_limited" ? { retryAfterMs: fault.retryAfterMs } : {}),
        });
        return;
      }
      const { fake, method, path } = liveTarget(live(), fault.target);
      switch (fault.kind) {
        case "transient":
          return fake.inject({ method, path, status: 503, times });
        case "permanent":
          return fake.inject({ method, path, status: fault.target === "deployApp" ? 422 : 400, times });
        case "rate_limited":
          return fake.inject({ method, path, status: 429, retryAfterSeconds: Math.ceil(fault.retryAfterMs / 1000), times });
        case "lost_response":
          return fake.inject({ method, path, dropResponse: true, times });
        case "slow":
          return fake.inject({ method, path, latencyMs: fault.latencyMs, times });
      }
    },

    async checkout(options = {}) {
      const event = checkoutEvent(options);
      const response = await deliver(event);
      return { event, sessionId: event.data.object.id, response };
    },

    deliver,

    async waitUntil(label, predicate, options = {}) {
      if (mode === "sandbox") {
        const budget = options.budgetMs ?? 30 * 60_000;
        let tick = options.tickMs ?? 100;
        const start = Date.now();
        for (;;) {
          if (await predicate()) return;
          if (Date.now() - start > budget) {
            throw new Error(`sandbox: still waiting for ${label} after ${budget} simulated ms; ${await describeJobs(t)}`);
          }
          await runFor(t, tick, Math.min(tick, Math.max(50, tick / 10)));
          tick = Math.min(tick * (options.growTick ?? 1), 60_000);
        }
      }
      const budget = options.budgetMs ?? 20_000;
      const start = Date.now();
      for (;;) {
        if (await predicate()) return;
        if (Date.now() - start > budget) throw new Error(`live: still waiting for ${label} after ${budget} ms; ${await describeJobs(t)}`);
        await sleep(20);
      }
    },

    async settle(sessionId) {
      let last: StatusBody | undefined;
      await h.waitUntil(
        `checkout ${sessionId} to be ready or failed`,
        async () => {
          const { status, body } = await statusOf(t, sessionId);
          last = body;
          return status === 200 && (body.status === "ready" || body.status === "failed");
        },
        { tickMs: 250, growTick: 1.5 },
      );
      return last!;
    },

    async quiesce() {
      if (mode === "sandbox") {
        await drain(t);
        return;
      }
      // Live: poll until two looks in a row find nothing in flight (or give up and let the
      // invariants say what is still moving).
      const start = Date.now();
      let calm = 0;
      while (Date.now() - start < 20_000 && calm < 2) {
        const busy = await inFlight(t);
        calm = busy.length === 0 ? calm + 1 : 0;
        await sleep(calm > 0 ? 150 : 25);
      }
      await live().github.settle();
    },

    async jumpClock(ms) {
      if (mode === "sandbox") {
        vi.advanceTimersByTime(ms);
        await drain(t);
        return;
      }
      // Cumulative: a second jump adds to the first (a spy wrapping the spy would recurse).
      clockOffsetMs += ms;
      vi.spyOn(Date, "now").mockImplementation(() => realNow() + clockOffsetMs);
    },

    job: (jobId) => t.run(async (ctx) => (await ctx.db.get("provisioningJobs", jobId as JobId))!),

    jobOfSession: (sessionId) =>
      t.run(async (ctx) => {
        const instance = await ctx.db
          .query("instances")
          .withIndex("by_checkoutSessionId", (q) => q.eq("checkoutSessionId", sessionId))
          .unique();
        if (!instance) return null;
        return await ctx.db
          .query("provisioningJobs")
          .withIndex("by_instanceId", (q) => q.eq("instanceId", instance._id))
          .first();
      }),

    instance: (instanceId) => t.run(async (ctx) => (await ctx.db.get("instances", instanceId as Id<"instances">))!),

    async resources() {
      const instanceIds = await t.run(async (ctx) => (await ctx.db.query("instances").collect()).map((i) => i._id as string));
      const known = new Set(instanceIds);
      const byName = new Map(instanceIds.map((id) => [resourceName(PREFIX, id), id]));
      const tagged = (name: string) => name.startsWith(`${PREFIX}-`);
      const found: Resource[] = [];
      if (mode === "sandbox") {
        const rows = await t.run(async (ctx) => ctx.db.query("sandboxResources").collect());
        const projects = rows.filter((r) => r.provider === "convex" && r.kind === "project");
        for (const r of projects) {
          found.push({ provider: "convex", id: r.externalId, name: r.name, owner: byName.get(r.name) ?? null, brain: tagged(r.name) });
        }
        for (const r of rows.filter((row) => row.provider === "convex" && row.kind === "deployment")) {
          const project = projects.find((p) => p.externalId === r.attributes.projectId);
          const owner = project ? (byName.get(project.name) ?? null) : null;
          found.push({ provider: "convexDeployment", id: r.name, name: r.name, owner, brain: project ? tagged(project.name) : true });
        }
        for (const r of rows) {
          if (r.provider === "workos" && r.kind === "organization") {
            found.push({ provider: "workos", id: r.externalId, name: r.name, owner: known.has(r.name) ? r.name : null, brain: r.attributes.managedBy === PREFIX });
          } else if (r.provider === "cloudflare" && r.kind === "pagesProject") {
            found.push({ provider: "cloudflare", id: r.name, name: r.name, owner: byName.get(r.name) ?? null, brain: tagged(r.name) });
          } else if (r.provider === "stripe" && r.kind === "webhookEndpoint") {
            found.push({ provider: "stripe", id: r.externalId, name: r.name, owner: known.has(r.name) ? r.name : null, brain: r.attributes.managedBy === PREFIX });
          }
        }
        return found;
      }
      const f = live();
      const projects = f.convex.projects();
      for (const p of projects) {
        found.push({ provider: "convex", id: String(p.id), name: p.name, owner: byName.get(p.name) ?? null, brain: tagged(p.name) });
      }
      for (const d of f.convex.deployments()) {
        const project = projects.find((p) => p.id === d.projectId);
        const owner = project ? (byName.get(project.name) ?? null) : null;
        found.push({ provider: "convexDeployment", id: d.name, name: d.name, owner, brain: project ? tagged(project.name) : true });
      }
      for (const o of f.workos.organizations()) {
        const owner = o.external_id && known.has(o.external_id) ? o.external_id : null;
        found.push({ provider: "workos", id: o.id, name: o.name, owner, brain: o.metadata.managedBy === PREFIX });
      }
      for (const p of f.cloudflare.projects()) {
        found.push({ provider: "cloudflare", id: p.name, name: p.name, owner: byName.get(p.name) ?? null, brain: tagged(p.name) });
      }
      for (const e of f.stripe.endpoints()) {
        const instanceId = e.metadata.instanceId;
        const owner = instanceId && known.has(instanceId) ? instanceId : null;
        found.push({ provider: "stripe", id: e.id, name: e.url, owner, brain: e.metadata.managedBy === PREFIX });
      }
      return found;
    },

    async admin(path, init = {}) {
      const response = await t.fetch(path, {
        method: init.method ?? "GET",
        headers: { ...adminHeaders(), ...(init.body !== undefined ? { "content-type": "application/json" } : {}) },
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : null };
    },
  };
  return h;
}

/** Every job in one line each, for failure messages. */
async function describeJobs(t: TestBackend): Promise<string> {
  const jobs = await t.run(async (ctx) => ctx.db.query("provisioningJobs").collect());
  if (jobs.length === 0) return "no jobs";
  return jobs
    .map((job) => {
      const steps = job.steps.map((s) => `${s.name}:${s.status}/${s.attempts}${s.lastError ? `(${s.lastError.class})` : ""}`).join(" ");
      const error = job.error ? ` error ${job.error.step} ${job.error.class}: ${job.error.message}` : "";
      return `job ${job._id} ${job.status}${job.compensationStatus ? ` compensation ${job.compensationStatus}` : ""}${error} [${steps}]`;
    })
    .join("; ");
}

/** What is still moving (empty when Brain is at rest). */
async function inFlight(t: TestBackend): Promise<string[]> {
  const jobs = await t.run(async (ctx) => ctx.db.query("provisioningJobs").collect());
  const now = Date.now();
  const busy: string[] = [];
  for (const job of jobs) {
    if (job.status === "running" || job.status === "queued") busy.push(`job ${job._id} ${job.status}`);
    for (const s of job.steps) if (LIVE_STEP_STATUSES.has(s.status)) busy.push(`job ${job._id} step ${s.name} ${s.status}`);
    if (job.compensationStatus === "running") busy.push(`job ${job._id} compensation running`);
    if (job.compensationStatus === "scheduled" && (job.compensateAt ?? 0) <= now + 5_000) busy.push(`job ${job._id} compensation due`);
  }
  return busy;
}

// ---------------------------------------------------------------------------------------
// The invariants, the same for every row and mode. Every violation is collected, so a
// failure names all of them at once.

/** What each instance holds one of. Stripe is not among them: no step makes a Stripe resource. */
const PROVIDERS = ["convex", "convexDeployment", "workos", "cloudflare"] as const;

function recordedId(instance: Doc<"instances">, provider: (typeof PROVIDERS)[number]): string | undefined {
  const r = instance.resources;
  switch (provider) {
    case "convex":
      return r.convexProjectId;
    case "convexDeployment":
      return r.convexDeploymentName;
    case "workos":
      return r.workosOrganizationId;
    case "cloudflare":
      return r.pagesProjectName;
  }
}

async function checkInvariants(h: Harness, paidSessions: string[]) {
  const { t } = h;
  const violations: string[] = [];
  const instances = await t.run(async (ctx) => ctx.db.query("instances").collect());
  const jobs = await t.run(async (ctx) => ctx.db.query("provisioningJobs").collect());
  const resources = await h.resources();
  const ownedBy = (instanceId: string) => resources.filter((r) => r.brain && r.owner === instanceId);
  const activeInstances = new Set<string>();

  // 1. Every paid checkout: exactly one instance, and it is active, or its job failed and
  //    nothing it made is left.
  for (const sessionId of paidSessions) {
    const mine = instances.filter((i) => i.checkoutSessionId === sessionId);
    if (mine.length !== 1) {
      violations.push(`checkout ${sessionId}: ${mine.length} instances, expected exactly 1`);
      continue;
    }
    const instance = mine[0];
    if (instance.resources.stripeEndpointId !== undefined) violations.push(`instance ${instance._id}: records Stripe endpoint ${instance.resources.stripeEndpointId}, which no step makes`);
    const instanceJobs = jobs.filter((j) => j.instanceId === instance._id);
    if (instanceJobs.length !== 1) violations.push(`instance ${instance._id}: ${instanceJobs.length} jobs, expected 1`);
    const job = instanceJobs[0];
    if (!job) continue;
    const page = (await statusOf(t, sessionId)).body;
    if (job.status === "succeeded") {
      activeInstances.add(instance._id);
      if (instance.status !== "active") violations.push(`instance ${instance._id}: job succeeded but the instance is ${instance.status}`);
      if (page.status !== "ready") violations.push(`checkout ${sessionId}: job succeeded but the status page says ${page.status}`);
      for (const provider of PROVIDERS) {
        const held = ownedBy(instance._id).filter((r) => r.provider === provider);
        const recorded = recordedId(instance, provider);
        if (held.length !== 1) violations.push(`active instance ${instance._id}: ${held.length} ${provider} resources, expected 1`);
        else if (held[0].id !== recorded) violations.push(`active instance ${instance._id}: ${provider} resource ${held[0].id} is not the recorded ${recorded}`);
      }
    } else if (job.status === "failed") {
      if (job.compensationStatus !== "done") violations.push(`failed job ${job._id}: compensation is ${job.compensationStatus ?? "not scheduled"}, expected done`);
      if (instance.status !== "failed") violations.push(`instance ${instance._id}: job failed but the instance is ${instance.status}`);
      if (page.status !== "failed") violations.push(`checkout ${sessionId}: job failed but the status page says ${page.status}`);
      for (const r of ownedBy(instance._id)) violations.push(`failed instance ${instance._id}: ${r.provider} ${r.id} still exists`);
      for (const provider of PROVIDERS) {
        const recorded = recordedId(instance, provider);
        if (recorded !== undefined) violations.push(`failed instance ${instance._id}: still records ${provider} ${recorded}`);
      }
    } else {
      violations.push(`checkout ${sessionId}: job ${job._id} ended ${job.status}, expected succeeded or failed`);
    }
  }
  const unpaid = instances.filter((i) => !paidSessions.includes(i.checkoutSessionId));
  for (const i of unpaid) violations.push(`instance ${i._id} exists for ${i.checkoutSessionId}, which is not a paid checkout of this scenario`);

  // 2. No resource twice; no Brain-tagged resource without an active instance (a leak); no
  //    Brain-tagged Stripe webhook endpoint, whatever it names (a retired kind of resource).
  const seen = new Map<string, number>();
  for (const r of resources.filter((x) => x.brain && x.provider === "stripe")) {
    violations.push(`Brain-tagged Stripe webhook endpoint ${r.id} (${r.name}) exists: no step makes one`);
  }
  for (const r of resources.filter((x) => x.brain)) {
    if (r.owner === null || !activeInstances.has(r.owner)) {
      violations.push(`leaked ${r.provider} ${r.id} (${r.name}): ${r.owner ? `instance ${r.owner} is not active` : "no instance owns it"}`);
    }
    if (r.owner !== null) seen.set(`${r.provider} of ${r.owner}`, (seen.get(`${r.provider} of ${r.owner}`) ?? 0) + 1);
  }
  for (const [what, count] of seen) if (count > 1) violations.push(`${count} x ${what}: a resource exists twice`);

  // 3. Nothing left running or queued, no step of a finished job still in flight.
  for (const job of jobs) {
    if (job.status === "running" || job.status === "queued") violations.push(`job ${job._id} left ${job.status}`);
    for (const s of job.steps) {
      if (LIVE_STEP_STATUSES.has(s.status)) violations.push(`job ${job._id} (${job.status}): step ${s.name} left ${s.status} at attempt ${s.attempts}`);
    }
  }

  // 4. The audit log holds every transition.
  for (const job of jobs) {
    const rows = await t.query(internal.audit.listForJob, { jobId: job._id, limit: 2000 });
    const count = (action: string) => rows.filter((r) => r.action === action).length;
    if (count("job.created") !== 1) violations.push(`job ${job._id}: ${count("job.created")} job.created entries, expected 1`);
    // Every attempt was dispatched on the record: by step.started (a first dispatch, or after a
    // manual retry) or by the step.retry_scheduled that queued it ("<step> attempt <n> in <ms> ms ...").
    const started = new Set(rows.filter((r) => r.action === "step.started").map((r) => r.detail));
    const queued = new Set(
      rows.filter((r) => r.action === "step.retry_scheduled").map((r) => /^(\w+ attempt \d+) in /.exec(r.detail ?? "")?.[1]),
    );
    for (const s of job.steps) {
      for (let attempt = 1; attempt <= s.attempts; attempt++) {
        const key = `${s.name} attempt ${attempt}`;
        if (!started.has(key) && !queued.has(key)) violations.push(`job ${job._id}: no dispatch record for ${key}`);
      }
    }
    const terminal = rows.filter((r) => r.action === "job.succeeded" || r.action === "job.failed").at(-1);
    const expected = job.status === "succeeded" ? "job.succeeded" : job.status === "failed" ? "job.failed" : null;
    if (expected && terminal?.action !== expected) violations.push(`job ${job._id} is ${job.status} but its last terminal audit entry is ${terminal?.action ?? "missing"}`);
    if (count("job.retried") !== job.retryCount) violations.push(`job ${job._id}: retryCount ${job.retryCount} but ${count("job.retried")} job.retried entries`);
    if (job.compensationStatus === "done" && (count("job.compensation_started") === 0 || count("job.compensated") === 0)) {
      violations.push(`job ${job._id}: compensated without job.compensation_started / job.compensated entries`);
    }
  }

  expect(violations).toEqual([]);
}

// ---------------------------------------------------------------------------------------
// The scenarios. `sandbox` and `live` say how each mode injects the failure.

type Row = {
  name: string;
  sandbox: string;
  live: string;
  env?: (mode: ModeName) => Record<string, string>;
  /** The test's timeout when the default (a minute) is too short. */
  timeoutMs?: number;
  /** Drives the scenario; returns the paid checkout sessions the invariants cover. */
  run: (h: Harness) => Promise<string[]>;
};

const ROWS: Row[] = [
  {
    name: "a webhook delivered again, also concurrently, provisions one instance and every repeat answers duplicate",
    sandbox: "the same signed event id sent four times (one, two at once, one after processing)",
    live: "same",
    async run(h) {
      const event = checkoutEvent();
      const first = await h.deliver(event);
      const concurrent = await Promise.all([h.deliver(event), h.deliver(event)]);
      const sessionId = event.data.object.id;
      await h.waitUntil("the job to start", async () => (await h.jobOfSession(sessionId)) !== null);
      const late = await h.deliver(event);
      const answers = await Promise.all([first, ...concurrent, late].map(async (r) => [r.status, await r.json()]));
      expect(answers).toEqual([
        [200, { received: true, duplicate: false }],
        [200, { received: true, duplicate: true }],
        [200, { received: true, duplicate: true }],
        [200, { received: true, duplicate: true }],
      ]);
      expectStatus(await h.settle(sessionId), "ready");
      return [sessionId];
    },
  },
  {
    name: "twenty tenants provisioned with no webhook endpoint created",
    sandbox: "twenty paid checkouts at once; no sandbox Stripe webhook endpoint row is ever made",
    live: "twenty paid checkouts at once; the Stripe fake sees no POST /v1/webhook_endpoints",
    timeoutMs: 180_000,
    async run(h) {
      const checkouts = await Promise.all(Array.from({ length: 20 }, () => h.checkout()));
      expect(checkouts.map((c) => c.response.status)).toEqual(checkouts.map(() => 200));
      const sessions = checkouts.map((c) => c.sessionId);
      const settled = async () => {
        const bodies = await Promise.all(sessions.map(async (id) => (await statusOf(h.t, id)).body));
        return bodies.every((b) => b.status === "ready" || b.status === "failed");
      };
      await h.waitUntil("twenty checkouts to settle", settled, { budgetMs: h.mode === "live" ? 150_000 : 30 * 60_000, tickMs: 250, growTick: 1.5 });
      const statuses = await Promise.all(sessions.map(async (id) => (await statusOf(h.t, id)).body));
      for (const status of statuses) expectStatus(status, "ready");
      expect(new Set(statuses.map((s) => s.instanceId)).size).toBe(20);
      for (const status of statuses) {
        expect((await h.instance(status.instanceId!)).resources).toMatchObject({ tenantWebhookSecretCiphertext: expect.stringMatching(/^v2:default:/) });
      }
      // One platform webhook, forwarded to each tenant: Stripe's webhook-endpoint API is never called.
      if (h.mode === "live") {
        expect(h.fakes().stripe.requests.filter((r) => r.method === "POST" && r.path.startsWith("/v1/webhook_endpoints"))).toEqual([]);
        expect(h.fakes().stripe.endpoints()).toEqual([]);
      } else {
        expect(await h.t.query(internal.sandbox.listResources, { provider: "stripe" })).toEqual([]);
      }
      return sessions;
    },
  },
  {
    name: "async_payment_succeeded arriving before checkout.session.completed provisions the session once",
    sandbox: "async_payment_succeeded, then completed with payment_status unpaid, same session",
    live: "same",
    async run(h) {
      const paid = checkoutEvent({ type: "checkout.session.async_payment_succeeded" });
      const sessionId = paid.data.object.id;
      const completed = checkoutEvent({ sessionId, paymentStatus: "unpaid", customerId: paid.data.object.customer });
      expect((await h.deliver(paid)).status).toBe(200);
      expect((await h.deliver(completed)).status).toBe(200);
      const status = await h.settle(sessionId);
      expectStatus(status, "ready");
      await h.quiesce();
      const outcomes = await Promise.all(
        [paid, completed].map(async (e) => (await h.t.query(internal.stripe.getStripeEvent, { eventId: e.id }))?.outcome),
      );
      expect(outcomes).toEqual(["provisioning_started", "awaiting_payment"]);
      expect((await statusOf(h.t, sessionId)).body.status).toBe("ready");
      return [sessionId];
    },
  },
  {
    name: "a provider answering 5xx is retried until it recovers and the job reaches ready",
    sandbox: "injectFault workosOrg transient x2",
    live: "WorkOS POST /organizations answers 503 twice",
    async run(h) {
      await h.inject({ target: "workosOrg", kind: "transient", times: 2 });
      const { sessionId } = await h.checkout();
      const status = await h.settle(sessionId);
      expectStatus(status, "ready");
      expect(status.steps.find((s) => s.name === "workosOrg")).toMatchObject({ attempts: 3, lastError: { class: "transient" } });
      return [sessionId];
    },
  },
  {
    name: "a 429 with retry-after is retried no sooner than the provider asked",
    sandbox: "injectFault pagesProject rate_limited x1, retryAfterMs 1000",
    live: "Cloudflare POST /pages/projects answers 429 with Retry-After: 1",
    async run(h) {
      await h.inject({ target: "pagesProject", kind: "rate_limited", retryAfterMs: 1000 });
      const { sessionId } = await h.checkout();
      const status = await h.settle(sessionId);
      expectStatus(status, "ready");
      expect(status.steps.find((s) => s.name === "pagesProject")).toMatchObject({ attempts: 2, lastError: { class: "rate_limited" } });
      const rows = await h.t.query(internal.audit.listForJob, { jobId: status.jobId as JobId });
      const retry = rows.find((r) => r.action === "step.retry_scheduled" && r.detail?.startsWith("pagesProject attempt 2 in "));
      expect(Number(/ in (\d+) ms/.exec(retry?.detail ?? "")?.[1])).toBeGreaterThanOrEqual(1000);
      return [sessionId];
    },
  },
  {
    name: "a provider call that times out is retried and what the slow call made is adopted, not duplicated",
    sandbox: "SANDBOX_LATENCY_MS 400 over STEP_DEADLINE_MS_PAGESPROJECT 200: the watchdog expires attempt 1 (class deadline) while it runs",
    live: "Cloudflare POST /pages/projects answers after 1200 ms, PROVIDER_TIMEOUT_MS 500 (the project is still made)",
    env: (mode): Record<string, string> =>
      mode === "sandbox" ? { SANDBOX_LATENCY_MS: "400", STEP_DEADLINE_MS_PAGESPROJECT: "200" } : { PROVIDER_TIMEOUT_MS: "500" },
    async run(h) {
      if (h.mode === "live") await h.inject({ target: "pagesProject", kind: "slow", latencyMs: 1200 });
      const { sessionId } = await h.checkout();
      if (h.mode === "sandbox") {
        await h.waitUntil(
          "pagesProject attempt 1 to pass its deadline while running",
          async () => {
            const job = await h.jobOfSession(sessionId);
            const pages = job && stepOf(job, "pagesProject");
            return !!pages && pages.status === "running" && pages.attempts === 1 && (pages.deadlineAt ?? Infinity) <= Date.now();
          },
          { tickMs: 50 },
        );
        expect(await h.t.mutation(internal.provisioning.runWatchdog, {})).toEqual({ expired: 1 });
      }
      const status = await h.settle(sessionId);
      expectStatus(status, "ready");
      expect(status.steps.find((s) => s.name === "pagesProject")).toMatchObject({
        attempts: 2,
        lastError: { class: h.mode === "sandbox" ? "deadline" : "transient" },
      });
      return [sessionId];
    },
  },
  {
    name: "a create whose response was lost is retried and adopts what the provider made",
    sandbox: "not expressible (a sandbox fault fires before the create): injectFault transient x1 on the three creating steps",
    live: "dropResponse once on each create: Convex create_project, WorkOS organizations, Cloudflare pages/projects",
    async run(h) {
      // (Stripe webhook_endpoints was a fourth create; no step makes one now.)
      const creates: FaultTarget[] = ["convexProject", "workosOrg", "pagesProject"];
      for (const target of creates) await h.inject({ target, kind: "lost_response" });
      const { sessionId } = await h.checkout();
      const status = await h.settle(sessionId);
      expectStatus(status, "ready");
      for (const name of creates) expect(status.steps.find((s) => s.name === name)?.attempts).toBe(2);
      return [sessionId];
    },
  },
  {
    name: "a permanent 4xx mid-job fails the job naming the step, and compensation removes every partial resource",
    sandbox: "injectFault configureBackend permanent",
    live: "Convex POST update_environment_variables answers 400",
    async run(h) {
      await h.inject({ target: "configureBackend", kind: "permanent" });
      const { sessionId } = await h.checkout();
      const status = await h.settle(sessionId);
      expectStatus(status, "failed");
      expect(status.error).toMatchObject({ step: "configureBackend", class: "permanent" });
      expect(status.steps.find((s) => s.name === "configureBackend")?.attempts).toBe(1);
      await h.quiesce();
      const rows = await h.t.query(internal.audit.listForJob, { jobId: status.jobId as JobId });
      // Convex, WorkOS and Cloudflare (no Stripe endpoint is made any more).
      expect(rows.filter((r) => r.action === "resource.deleted").map((r) => r.detail!.split(" ")[0]).sort()).toEqual(["cloudflare", "convex", "workos"]);
      return [sessionId];
    },
  },
  {
    name: "a step whose action died is re-dispatched by the watchdog after its deadline and the job completes",
    sandbox: "after ready, validate is marked dispatched again (running, attempt n+1, step.started audited) with a past deadline and no action behind it; runWatchdog",
    live: "same",
    async run(h) {
      const { sessionId } = await h.checkout();
      const ready = await h.settle(sessionId);
      expectStatus(ready, "ready");
      const jobId = ready.jobId as JobId;
      const before = stepOf(await h.job(jobId), "validate").attempts;
      // As if Brain had dispatched validate's next attempt and its action died without a word.
      await h.t.run(async (ctx) => {
        const job = (await ctx.db.get("provisioningJobs", jobId))!;
        const now = Date.now();
        const attempt = before + 1;
        const steps = job.steps.map((s): StepState =>
          s.name === "validate"
            ? { name: s.name, status: "running", attempts: attempt, startedAt: now - 10, deadlineAt: now - 1 }
            : s.name === "activate"
              ? { name: s.name, status: "pending", attempts: s.attempts }
              : s,
        );
        await ctx.db.patch("provisioningJobs", jobId, { status: "running", steps, currentStep: 8, finishedAt: undefined });
        await ctx.db.patch("instances", job.instanceId, { status: "provisioning" });
        await ctx.db.insert("auditLogs", {
          at: now - 10,
          actor: "system:job-engine",
          action: "step.started",
          jobId,
          instanceId: job.instanceId,
          detail: `validate attempt ${attempt}`,
        });
      });
      expect(await h.t.mutation(internal.provisioning.runWatchdog, {})).toEqual({ expired: 1 });
      expect(stepOf(await h.job(jobId), "validate")).toMatchObject({ status: "retrying", attempts: before + 2, lastError: { class: "deadline" } });
      await h.waitUntil("the job to finish again", async () => (await h.job(jobId)).status !== "running");
      const done = (await statusOf(h.t, sessionId)).body;
      expectStatus(done, "ready");
      expect(done.steps.find((s) => s.name === "validate")?.attempts).toBe(before + 2);
      return [sessionId];
    },
  },
  {
    name: "a late result from an attempt the watchdog superseded changes nothing, and the re-dispatch completes the job",
    sandbox: "SANDBOX_LATENCY_MS 300; pagesProject attempt 1's deadline set in the past while it runs; runWatchdog; then attempt 1's results (success with other resources, permanent, action failed) via onStepComplete",
    live: "Cloudflare POST /pages/projects answers after 600 ms; the same deadline, watchdog and late results, and attempt 1's real result arrives late too",
    env: (mode) => ({ RETRY_BASE_DELAY_MS: "1000", RETRY_MAX_DELAY_MS: "1000", ...(mode === "sandbox" ? { SANDBOX_LATENCY_MS: "300" } : {}) }),
    async run(h) {
      if (h.mode === "live") await h.inject({ target: "pagesProject", kind: "slow", latencyMs: 600 });
      const { sessionId } = await h.checkout();
      let jobId: JobId | undefined;
      await h.waitUntil(
        "pagesProject attempt 1 to be running",
        async () => {
          const job = await h.jobOfSession(sessionId);
          jobId = job?._id;
          const pages = job && stepOf(job, "pagesProject");
          return !!pages && pages.status === "running" && pages.attempts === 1;
        },
        { tickMs: 10 },
      );
      await h.t.run(async (ctx) => {
        const job = (await ctx.db.get("provisioningJobs", jobId!))!;
        const steps = job.steps.map((s) => (s.name === "pagesProject" ? { ...s, deadlineAt: Date.now() - 1 } : s));
        await ctx.db.patch("provisioningJobs", jobId!, { steps });
      });
      expect(await h.t.mutation(internal.provisioning.runWatchdog, {})).toEqual({ expired: 1 });
      const superseded = stepOf(await h.job(jobId!), "pagesProject");
      expect(superseded).toMatchObject({ status: "retrying", attempts: 2, lastError: { class: "deadline" } });
      const instanceId = (await h.job(jobId!)).instanceId;
      const context = { jobId: jobId!, step: "pagesProject" as const, attempt: 1 };
      const late = [
        { kind: "success" as const, returnValue: { kind: "succeeded" as const, resources: { pagesProjectName: "brain-late", pagesSubdomain: "late.pages.dev" } } },
        { kind: "success" as const, returnValue: { kind: "permanent" as const, message: "late permanent failure" } },
        { kind: "failed" as const, error: "late action failure" },
      ];
      for (const result of late) {
        await h.t.mutation(internal.provisioning.onStepComplete, { workId: "late-attempt" as WorkId, context, result });
      }
      const after = await h.job(jobId!);
      expect(after.status).toBe("running");
      expect(stepOf(after, "pagesProject")).toEqual(superseded);
      expect((await h.instance(instanceId)).resources.pagesProjectName).toBeUndefined();
      const status = await h.settle(sessionId);
      expectStatus(status, "ready");
      expect(status.steps.find((s) => s.name === "pagesProject")?.attempts).toBe(2);
      expect((await h.instance(instanceId)).resources.pagesProjectName).toBe(resourceName(PREFIX, instanceId));
      return [sessionId];
    },
  },
  {
    name: "a manual retry while an automatic retry is still queued runs one attempt, not two, and reaches ready",
    sandbox: "injectFault pagesProject rate_limited (retryAfterMs 1000) and configureBackend permanent; POST /retry-provisioning once the job failed and pagesProject still waits for its retry; CLEANUP_DELAY_MS 600000",
    live: "Cloudflare POST /pages/projects 429 Retry-After: 1 and Convex POST update_environment_variables 400; the same retry",
    env: () => ({ CLEANUP_DELAY_MS: "600000" }),
    async run(h) {
      // The step that fails the job must not wait for pagesProject: configureBackend (which
      // replaced stripeEndpoint here) needs only convexProject and workosOrg.
      await h.inject({ target: "pagesProject", kind: "rate_limited", retryAfterMs: 1000 });
      await h.inject({ target: "configureBackend", kind: "permanent" });
      const { sessionId } = await h.checkout();
      let job: Job | null = null;
      await h.waitUntil(
        "the job to fail while pagesProject waits for its automatic retry",
        async () => {
          job = await h.jobOfSession(sessionId);
          return job?.status === "failed";
        },
        { tickMs: 20 },
      );
      const failed = job! as Job;
      expect(failed.error).toMatchObject({ step: "configureBackend", class: "permanent" });
      expect(stepOf(failed, "pagesProject")).toMatchObject({ status: "retrying", attempts: 2 });
      const retry = await h.admin(`/retry-provisioning/${failed._id}`, { method: "POST" });
      expect(retry).toMatchObject({ status: 202, body: { retryCount: 1 } });
      const status = await h.settle(sessionId);
      expectStatus(status, "ready");
      // The queued automatic attempt (2) was cancelled in its pool when the job failed, so it
      // never ran; the manual retry ran one fresh attempt (3), never two at once.
      expect(status.steps.find((s) => s.name === "pagesProject")?.attempts).toBe(3);
      expect(status.steps.find((s) => s.name === "configureBackend")?.attempts).toBe(2);
      return [sessionId];
    },
  },
  {
    name: "two concurrent manual retries start one run: one answers 202, the other 409",
    sandbox: "injectFault configureBackend permanent; compensation done; two POST /retry-provisioning at once",
    live: "Convex POST update_environment_variables answers 400; the same",
    async run(h) {
      // (The fault was on stripeEndpoint, a step now gone; any permanent fault fails the job.)
      await h.inject({ target: "configureBackend", kind: "permanent" });
      const { sessionId } = await h.checkout();
      const failed = await h.settle(sessionId);
      expectStatus(failed, "failed");
      const jobId = failed.jobId!;
      await h.waitUntil("the compensation to finish", async () => (await h.job(jobId)).compensationStatus === "done");
      const answers = await Promise.all([1, 2].map(() => h.admin(`/retry-provisioning/${jobId}`, { method: "POST" })));
      expect(answers.map((a) => a.status).sort()).toEqual([202, 409]);
      expect(answers.find((a) => a.status === 409)?.body).toMatchObject({ error: { code: "JOB_NOT_FAILED" } });
      const status = await h.settle(sessionId);
      expectStatus(status, "ready");
      expect((await h.job(jobId)).retryCount).toBe(1);
      return [sessionId];
    },
  },
  {
    name: "cancelling mid-step fails the job as cancelled and removes everything, including what in-flight steps made after",
    sandbox: "SANDBOX_LATENCY_MS 200; POST /cancel-provisioning while the first three steps run",
    live: "Convex, WorkOS and Cloudflare creates answer after 400 ms; POST /cancel-provisioning while they are in flight",
    env: (mode): Record<string, string> => (mode === "sandbox" ? { SANDBOX_LATENCY_MS: "200" } : {}),
    async run(h) {
      if (h.mode === "live") {
        for (const target of ["convexProject", "workosOrg", "pagesProject"] as const) await h.inject({ target, kind: "slow", latencyMs: 400 });
      }
      const { sessionId } = await h.checkout();
      let jobId: string | undefined;
      await h.waitUntil(
        "the first steps to be running",
        async () => {
          const job = await h.jobOfSession(sessionId);
          jobId = job?._id;
          return !!job && job.steps.filter((s) => s.status === "running").length === 3;
        },
        { tickMs: 10 },
      );
      const cancel = await h.admin(`/cancel-provisioning/${jobId}`, { method: "POST" });
      expect(cancel).toMatchObject({ status: 202, body: { status: "failed", error: { class: "cancelled" } } });
      await h.quiesce();
      const status = (await statusOf(h.t, sessionId)).body;
      expectStatus(status, "failed");
      expect(status.error).toMatchObject({ class: "cancelled", message: "cancelled by admin-api" });
      for (const name of ["deployApp", "activate"]) expect(status.steps.find((s) => s.name === name)?.attempts).toBe(0);
      return [sessionId];
    },
  },
  {
    name: "an outage longer than the retry budget opens the circuit, its steps wait instead of failing, and it closes on recovery",
    sandbox: "injectFault pagesProject transient x8; RETRY_MAX_ATTEMPTS 4, CIRCUIT_FAILURE_THRESHOLD 3, CIRCUIT_COOLDOWN_MS 60000",
    live: "Cloudflare POST /pages/projects answers 503 eight times; the same limits, CIRCUIT_COOLDOWN_MS 500",
    env: (mode) => ({
      RETRY_MAX_ATTEMPTS: "4",
      CIRCUIT_FAILURE_THRESHOLD: "3",
      CIRCUIT_COOLDOWN_MS: mode === "sandbox" ? "60000" : "500",
    }),
    async run(h) {
      await h.inject({ target: "pagesProject", kind: "transient", times: 8 });
      const { sessionId } = await h.checkout();
      const cloudflare = async () => {
        const { status, body } = await h.admin("/admin/circuits");
        expect(status).toBe(200);
        return (body.circuits as { provider: string; state: string }[]).find((c) => c.provider === "cloudflare")!;
      };
      await h.waitUntil("the Cloudflare circuit to open", async () => (await cloudflare()).state === "open", { tickMs: 500 });
      expect(await cloudflare()).toMatchObject({ state: "open", failures: expect.any(Number), openedAt: expect.any(Number) });
      expect((await statusOf(h.t, sessionId)).body.status).toBe("provisioning");
      const status = await h.settle(sessionId);
      expectStatus(status, "ready");
      expect(status.steps.find((s) => s.name === "pagesProject")?.attempts).toBe(9);
      expect(await cloudflare()).toEqual({ provider: "cloudflare", state: "closed", failures: 0 });
      return [sessionId];
    },
  },
  {
    name: "compensation counts a resource already deleted by hand as deleted and removes the rest",
    sandbox: "injectFault deployApp permanent, CLEANUP_DELAY_MS 3600000; the Pages project and WorkOS organization rows deleted by hand; the delay passes",
    live: "GitHub dispatch answers 422, CLEANUP_DELAY_MS 3600000; deleteProjectOutOfBand / deleteOrganizationOutOfBand; internal.cleanup.compensateNow",
    env: () => ({ CLEANUP_DELAY_MS: "3600000" }),
    async run(h) {
      await h.inject({ target: "deployApp", kind: "permanent" });
      const { sessionId } = await h.checkout();
      const failed = await h.settle(sessionId);
      expectStatus(failed, "failed");
      expect(failed.error).toMatchObject({ step: "deployApp", class: "permanent" });
      const jobId = failed.jobId as JobId;
      expect((await h.job(jobId)).compensationStatus).toBe("scheduled");
      const instance = await h.instance(failed.instanceId!);
      const pages = instance.resources.pagesProjectName!;
      // (The second resource deleted by hand was the Stripe endpoint; no step makes one now.)
      const organization = instance.resources.workosOrganizationId!;
      if (h.mode === "sandbox") {
        await h.t.run(async (ctx) => {
          for (const row of await ctx.db.query("sandboxResources").collect()) {
            const byHand =
              (row.provider === "cloudflare" && row.kind === "pagesProject" && row.name === pages) ||
              (row.provider === "workos" && row.kind === "organization" && row.externalId === organization);
            if (byHand) await ctx.db.delete("sandboxResources", row._id);
          }
        });
      } else {
        h.fakes().cloudflare.deleteProjectOutOfBand(pages);
        h.fakes().workos.deleteOrganizationOutOfBand(organization);
        expect(await h.t.mutation(internal.cleanup.compensateNow, { jobId, actor: "operator" })).toBe(true);
      }
      await h.quiesce();
      const rows = await h.t.query(internal.audit.listForJob, { jobId });
      expect(rows.filter((r) => r.action === "resource.delete_failed")).toEqual([]);
      expect(rows.filter((r) => r.action === "resource.deleted").map((r) => r.detail!.split(" ")[0]).sort()).toEqual([
        "cloudflare",
        "convex",
        "workos",
      ]);
      return [sessionId];
    },
  },
  {
    name: "an orphan made outside any job is reported and removed, and resources not tagged as Brain's are never touched",
    sandbox: "sandboxResources rows: a brain- Pages project and a managedBy brain WorkOS organization naming no instance, a managedBy brain Stripe webhook endpoint naming the active instance (retired), plus untagged Pages, WorkOS, Stripe and Convex resources",
    live: "the same made directly in the fakes over their APIs",
    async run(h) {
      const { sessionId } = await h.checkout();
      const ready = await h.settle(sessionId);
      expect(ready.status).toBe("ready");
      const made = await makeOrphansAndForeign(h, ready.instanceId!);
      const key = (o: { provider: string; resourceId: string }) => `${o.provider}:${o.resourceId}`;
      const expected = made.orphans.map(key).sort();

      const scan = await h.admin("/admin/orphans");
      expect(scan.status).toBe(200);
      expect((scan.body.orphans as { provider: string; resourceId: string }[]).map(key).sort()).toEqual(expected);

      const dry = await h.admin("/admin/orphans/cleanup", { method: "POST", body: { dryRun: true } });
      expect(dry.status).toBe(200);
      expect(dry.body.deleted).toEqual([]);
      expect((dry.body.wouldDelete as { provider: string; resourceId: string }[]).map(key).sort()).toEqual(expected);
      expect((await h.resources()).filter((r) => made.orphans.some((o) => o.resourceId === r.id))).toHaveLength(3);

      const real = await h.admin("/admin/orphans/cleanup", { method: "POST", body: { dryRun: false } });
      expect(real.status).toBe(200);
      expect((real.body.deleted as { provider: string; resourceId: string }[]).map(key).sort()).toEqual(expected);
      expect((await h.admin("/admin/orphans")).body.orphans).toEqual([]);
      const left = await h.resources();
      expect(left.filter((r) => made.orphans.some((o) => o.resourceId === r.id))).toEqual([]);
      expect(left.filter((r) => !r.brain).map((r) => `${r.provider}:${r.id}`).sort()).toEqual(made.foreign.sort());
      return [sessionId];
    },
  },
  {
    name: "an event redelivered days later is acknowledged as a duplicate and changes nothing",
    sandbox: "after ready, the clock moves on three days (everything due runs), then the same event id is redelivered, re-signed, and a new event for the same session",
    live: "the same, with Date.now moved three days on",
    async run(h) {
      const { event, sessionId } = await h.checkout();
      const ready = await h.settle(sessionId);
      expectStatus(ready, "ready");
      await h.quiesce();
      const snapshot = async () => ({
        instances: await h.t.run(async (ctx) => (await ctx.db.query("instances").collect()).length),
        job: await h.job(ready.jobId!),
        audit: (await h.t.query(internal.audit.listForJob, { jobId: ready.jobId as JobId, limit: 2000 })).length,
        resources: (await h.resources()).map((r) => `${r.provider}:${r.id}`).sort(),
      });
      const before = await snapshot();
      await h.jumpClock(3 * DAY_MS);
      const again = await h.deliver(event);
      expect([again.status, await again.json()]).toEqual([200, { received: true, duplicate: true }]);
      const fresh = checkoutEvent({ sessionId, customerId: event.data.object.customer });
      const freshAnswer = await h.deliver(fresh);
      expect([freshAnswer.status, await freshAnswer.json()]).toEqual([200, { received: true, duplicate: false }]);
      await h.waitUntil("the new event to be processed", async () => {
        const record = await h.t.query(internal.stripe.getStripeEvent, { eventId: fresh.id });
        return record?.processedAt !== undefined;
      });
      expect((await h.t.query(internal.stripe.getStripeEvent, { eventId: fresh.id }))?.outcome).toBe("already_provisioned");
      await h.quiesce();
      const after = await snapshot();
      expect(after).toEqual(before);
      return [sessionId];
    },
  },
  {
    name: "a deploy callback that never arrives fails deployApp at its deadline and the re-dispatch completes the job",
    sandbox: "SANDBOX_LATENCY_MS 500, STEP_DEADLINE_MS_DEPLOYAPP 2000; the sandbox run's scheduled report (recordDeployReport) is cancelled while deployApp waits",
    live: "fakes.github.setCallbackMode(\"silent\") for the first dispatch, then \"succeed\"; STEP_DEADLINE_MS_DEPLOYAPP 400",
    env: (mode): Record<string, string> => (mode === "sandbox" ? { SANDBOX_LATENCY_MS: "500", STEP_DEADLINE_MS_DEPLOYAPP: "2000" } : { STEP_DEADLINE_MS_DEPLOYAPP: "400" }),
    async run(h) {
      if (h.mode === "live") h.fakes().github.setCallbackMode("silent");
      const { sessionId } = await h.checkout();
      if (h.mode === "live") {
        await h.waitUntil("the first dispatch", async () => h.fakes().github.dispatches().length > 0);
        h.fakes().github.setCallbackMode("succeed");
      } else {
        await h.waitUntil(
          "deployApp to wait for its report",
          async () => {
            const job = await h.jobOfSession(sessionId);
            return !!job && stepOf(job, "deployApp").status === "waiting";
          },
          { tickMs: 50 },
        );
        const lost = await h.t.run(async (ctx) => {
          const pending = (await ctx.db.system.query("_scheduled_functions").collect()).filter(
            (f) => f.name.includes("recordDeployReport") && f.state.kind === "pending",
          );
          for (const f of pending) await ctx.scheduler.cancel(f._id);
          return pending.length;
        });
        expect(lost).toBe(1);
      }
      const status = await h.settle(sessionId);
      expectStatus(status, "ready");
      expect(status.steps.find((s) => s.name === "deployApp")).toMatchObject({
        attempts: 2,
        lastError: { class: "deadline", message: expect.stringContaining("deadline") },
      });
      if (h.mode === "live") expect(h.fakes().github.dispatches()).toHaveLength(2);
      return [sessionId];
    },
  },
];

/**
 * Brain-tagged orphans (a Pages project named with the prefix and a WorkOS organization with
 * managedBy, neither naming a real instance, and a managedBy Stripe webhook endpoint naming the
 * active instance `activeInstanceId`: an orphan all the same, as no step makes one any more)
 * and resources that are not Brain's at all.
 */
async function makeOrphansAndForeign(h: Harness, activeInstanceId: string) {
  const orphanPages = `${PREFIX}-00000000000000000099991instances`;
  if (h.mode === "sandbox") {
    const ids = await h.t.run(async (ctx) => {
      const now = Date.now();
      const row = (provider: "convex" | "workos" | "cloudflare" | "stripe", kind: string, name: string, externalId: string, attributes: Record<string, string>) =>
        ctx.db.insert("sandboxResources", { provider, kind, name, externalId, attributes, createdAt: now, updatedAt: now });
      await row("cloudflare", "pagesProject", orphanPages, "pagesProject_orphan0001", { subdomain: `${orphanPages}.pages.dev` });
      await row("workos", "organization", "orphanext0001", "organization_orphan0001", { displayName: "Orphaned org", managedBy: PREFIX });
      await row("stripe", "webhookEndpoint", activeInstanceId, "webhookEndpoint_retired01", {
        url: "https://tenant.example.convex.site/stripe/webhook",
        managedBy: PREFIX,
        instanceId: activeInstanceId,
      });
      await row("cloudflare", "pagesProject", "customer-site", "pagesProject_foreign01", { subdomain: "customer-site.pages.dev" });
      await row("workos", "organization", "acme-external", "organization_foreign01", { displayName: "Acme" });
      await row("stripe", "webhookEndpoint", "acme-hook", "webhookEndpoint_foreign01", { url: "https://acme.example.com/hook" });
      await row("convex", "project", "acme-prod", "project_foreign01", {});
      return { org: "organization_orphan0001" };
    });
    return {
      orphans: [
        { provider: "cloudflare", resourceId: orphanPages },
        { provider: "workos", resourceId: ids.org },
        { provider: "stripe", resourceId: "webhookEndpoint_retired01" },
      ],
      foreign: ["cloudflare:customer-site", "workos:organization_foreign01", "stripe:webhookEndpoint_foreign01", "convex:project_foreign01"],
    };
  }
  const f = h.fakes();
  const c = FAKE_CREDENTIALS;
  const call = async (url: string, init: RequestInit) => {
    const response = await fetch(url, init);
    const body = (await response.json()) as Record<string, any>;
    if (!response.ok) throw new Error(`${init.method} ${url}: ${response.status} ${JSON.stringify(body)}`);
    return body;
  };
  const json = (token: string, body: unknown): RequestInit => ({
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const pagesUrl = `${f.cloudflare.apiUrl}/accounts/${c.cloudflareAccount}/pages/projects`;
  await call(pagesUrl, json(c.cloudflareToken, { name: orphanPages, production_branch: "main" }));
  const org = await call(`${f.workos.url}/organizations`, json(c.workosKey, { name: "Orphaned org", external_id: "orphanext0001", metadata: { managedBy: PREFIX } }));
  await call(pagesUrl, json(c.cloudflareToken, { name: "customer-site", production_branch: "main" }));
  const foreignOrg = await call(`${f.workos.url}/organizations`, json(c.workosKey, { name: "Acme", external_id: "acme-external" }));
  const stripeForm = (params: Record<string, string>): RequestInit => ({
    method: "POST",
    headers: { authorization: `Bearer ${c.stripeKey}`, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(params).toString(),
  });
  const retired = await call(
    `${f.stripe.url}/v1/webhook_endpoints`,
    stripeForm({
      url: "https://tenant.example.convex.site/stripe/webhook",
      "enabled_events[]": "checkout.session.completed",
      "metadata[managedBy]": PREFIX,
      "metadata[instanceId]": activeInstanceId,
    }),
  );
  const hook = await call(`${f.stripe.url}/v1/webhook_endpoints`, {
    method: "POST",
    headers: { authorization: `Bearer ${c.stripeKey}`, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ url: "https://acme.example.com/hook", "enabled_events[]": "checkout.session.completed" }).toString(),
  });
  const project = await call(`${f.convex.managementUrl}/teams/${c.convexTeamId}/create_project`, json(c.convexToken, { projectName: "acme-prod" }));
  return {
    orphans: [
      { provider: "cloudflare", resourceId: orphanPages },
      { provider: "workos", resourceId: String(org.id) },
      { provider: "stripe", resourceId: String(retired.id) },
    ],
    foreign: [`cloudflare:customer-site`, `workos:${foreignOrg.id}`, `stripe:${hook.id}`, `convex:${project.id}`],
  };
}

// ---------------------------------------------------------------------------------------
// The tenant's life (docs/lifecycle.md). Here an instance lives on after provisioning: it may
// have several jobs (provision, then suspend, resume, deprovision) and end active, suspended or
// deleted, so these rows end with their own invariants (checkLifecycleInvariants), checked in
// the same way. In live mode Brain forwards each tenant's Stripe events to a fake tenant app
// fleet (tests/fakes/tenant.ts), which verifies them with stripe-node and the deployment's
// STRIPE_WEBHOOK_SECRET as set by configureBackend.

type Instance = Doc<"instances">;
type InstanceStatus = Instance["status"];

/** What a lifecycle row made: every instance it expects to exist, and the status it ends in. */
type Scenario = { instances: Record<string, InstanceStatus> };

type LifecycleRow = Omit<Row, "run"> & {
  /** Drives the scenario; returns the instances it made and where each should end. */
  run: (h: Harness) => Promise<Scenario>;
};

/** Instance statuses that hold their resources (a provisioned stack, up or suspended). */
const HOLDING: ReadonlySet<InstanceStatus> = new Set<InstanceStatus>(["active", "suspended", "deprovisioning"]);
/** Instance statuses Brain sends forwards to (model/forwarding.ts RECEIVING_STATUSES). */
const RECEIVING: ReadonlySet<InstanceStatus> = new Set<InstanceStatus>(["active"]);
/** What a deprovision deletes, by provider, and where the provision job recorded it. */
const DELETED_BY_DEPROVISION = [
  ["convex", "convexProjectId"],
  ["workos", "workosOrganizationId"],
  ["cloudflare", "pagesProjectName"],
] as const;

let serial = 0;
const uniqueId = (prefix: string) => `${prefix}_chaos${Date.now().toString(36)}${(++serial).toString(36).padStart(3, "0")}`;
const nowSeconds = () => Math.floor(Date.now() / 1000);

const jobsOf = (h: Harness, instanceId: string) =>
  h.t.run((ctx) =>
    ctx.db
      .query("provisioningJobs")
      .withIndex("by_instanceId", (q) => q.eq("instanceId", instanceId as Id<"instances">))
      .collect(),
  );
/** The instance's jobs, oldest first, as `kind:status`. */
const kindsOf = async (h: Harness, instanceId: string) => (await jobsOf(h, instanceId)).map((j) => `${j.kind}:${j.status}`);

/** Until the instance's jobs are exactly `kinds` (oldest first). */
async function untilJobs(h: Harness, instanceId: string, kinds: string[]) {
  await h.waitUntil(`instance ${instanceId}'s jobs to be ${kinds.join(", ")}`, async () => (await kindsOf(h, instanceId)).join() === kinds.join(), {
    tickMs: 100,
    growTick: 1.5,
  });
}

/** Until Brain has processed the event; returns its outcome (applied, stale, ...). */
async function outcomeOf(h: Harness, eventId: string) {
  const record = () => h.t.query(internal.stripe.getStripeEvent, { eventId });
  await h.waitUntil(`event ${eventId} to be processed`, async () => (await record())?.processedAt !== undefined, { tickMs: 20 });
  return (await record())!.outcome;
}

type Tenant = { sessionId: string; customerId: string; subscriptionId: string; instanceId: string; checkoutEventId: string };

/** Paid checkouts of new subscriptions, sent at once, each provisioned to ready. */
async function subscribe(h: Harness, count = 1, customerId?: string): Promise<Tenant[]> {
  const sent = await Promise.all(
    Array.from({ length: count }, async () => {
      const ids = { customerId: customerId ?? uniqueId("cus"), subscriptionId: uniqueId("sub") };
      const { event, sessionId, response } = await h.checkout(ids);
      expect(response.status).toBe(200);
      return { ...ids, sessionId, checkoutEventId: event.id };
    }),
  );
  const tenants: Tenant[] = [];
  // One at a time: in sandbox mode each wait drives the simulated clock.
  for (const checkout of sent) {
    const ready = await h.settle(checkout.sessionId);
    expectStatus(ready, "ready");
    tenants.push({ ...checkout, instanceId: ready.instanceId! });
  }
  return tenants;
}

/** `customer.subscription.deleted` for the tenant (status canceled), `created` now unless given. */
const subscriptionDeleted = (tenant: Pick<Tenant, "subscriptionId" | "customerId">, created?: number) =>
  subscriptionEvent({ type: "customer.subscription.deleted", subscriptionId: tenant.subscriptionId, customerId: tenant.customerId, ...(created ? { created } : {}) });

/** An `invoice.paid` event of the tenant's subscription, as Stripe sends it. */
function invoicePaid(tenant: Pick<Tenant, "subscriptionId" | "customerId">, created = nowSeconds()) {
  return {
    id: uniqueId("evt_test"),
    object: "event",
    api_version: "2025-10-29.clover",
    created,
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type: "invoice.paid",
    data: {
      object: {
        id: uniqueId("in_test"),
        object: "invoice",
        customer: tenant.customerId,
        subscription: tenant.subscriptionId,
        status: "paid",
        amount_paid: 1900,
        currency: "usd",
      },
    },
  };
}

/**
 * The deprovision grace runs out. Sandbox: the clock moves past it and the instance's own timer
 * fires. Live: a real timer an hour ahead cannot fire within a test, so Date.now moves past it
 * and the backstop cron's mutation (lifecycle.reviewDueDeprovisions, every 15 minutes) runs by
 * hand; returns how many instances it found due (null in sandbox mode).
 */
async function graceRunsOut(h: Harness, graceMs: number): Promise<number | null> {
  await h.jumpClock(graceMs + 1_000);
  if (h.mode === "sandbox") return null;
  return h.t.mutation(internal.lifecycle.reviewDueDeprovisions, {});
}

/** Time passes. Sandbox: simulated, running what falls due a minute at a time. Live: Date.now moves on, and a quarter second of real retries happens. */
async function passTime(h: Harness, ms: number) {
  if (h.mode === "sandbox") {
    await elapse(h.t, ms, 60_000);
    return;
  }
  await h.jumpClock(ms);
  await sleep(250);
}

// Stripe's own state, for reconciliation: sandbox rows (internal.sandbox.seedStripe) or the Stripe fake.
async function stripeHasSubscription(h: Harness, s: { subscriptionId: string; customerId: string; status: SubscriptionStatus }) {
  if (h.mode === "sandbox") {
    await h.t.mutation(internal.sandbox.seedStripe, { kind: "subscription", id: s.subscriptionId, attributes: { status: s.status, customerId: s.customerId } });
  } else {
    h.fakes().stripe.addSubscription({ id: s.subscriptionId, customer: s.customerId, status: s.status });
  }
}

async function stripeChangesStatus(h: Harness, subscriptionId: string, status: SubscriptionStatus) {
  if (h.mode === "sandbox") await h.t.mutation(internal.sandbox.seedStripe, { kind: "subscription", id: subscriptionId, attributes: { status } });
  else h.fakes().stripe.setSubscriptionStatus(subscriptionId, status);
}

async function stripeHasPaidCheckout(h: Harness, c: { sessionId: string; subscriptionId: string; customerId: string }) {
  const email = `${c.customerId.toLowerCase()}@example.com`;
  if (h.mode === "sandbox") {
    await h.t.mutation(internal.sandbox.seedStripe, {
      kind: "checkoutSession",
      id: c.sessionId,
      attributes: { customerId: c.customerId, subscriptionId: c.subscriptionId, email, name: "Ada Lovelace" },
    });
  } else {
    h.fakes().stripe.addCheckoutSession({
      id: c.sessionId,
      customer: c.customerId,
      subscription: c.subscriptionId,
      customer_details: { email, name: "Ada Lovelace", phone: null, tax_exempt: "none" },
    });
  }
}

/** The tenant's deployment and organization as the providers see them: paused or not, and each membership's status. */
async function atProviders(h: Harness, instance: Instance): Promise<{ paused: boolean | null; memberships: string[] }> {
  const deployment = instance.resources.convexDeploymentName;
  const organization = instance.resources.workosOrganizationId;
  if (h.mode === "sandbox") {
    return h.t.run(async (ctx) => {
      const row = deployment
        ? await ctx.db
            .query("sandboxResources")
            .withIndex("by_provider_and_kind_and_name", (q) => q.eq("provider", "convex").eq("kind", "deployment").eq("name", deployment))
            .first()
        : null;
      const prefix = `${organization}:`;
      const memberships = organization
        ? await ctx.db
            .query("sandboxResources")
            .withIndex("by_provider_and_kind_and_name", (q) =>
              q.eq("provider", "workos").eq("kind", "membership").gte("name", prefix).lt("name", `${prefix}\uffff`),
            )
            .collect()
        : [];
      return { paused: row ? row.attributes.paused === "true" : null, memberships: memberships.map((m) => m.attributes.status ?? "active") };
    });
  }
  const f = h.fakes();
  let paused: boolean | null = null;
  try {
    paused = deployment ? f.convex.isPaused(deployment) : null;
  } catch {
    paused = null; // no such deployment
  }
  return { paused, memberships: f.workos.memberships().filter((m) => m.organization_id === organization).map((m) => m.status) };
}

/** The tenant's deployment answers 503 (down) or serves again. Sandbox: its deployment's paused attribute; live: the tenant fake's mode. */
async function setTenantUp(h: Harness, deployment: string, up: boolean) {
  if (h.mode === "live") {
    h.tenant().setMode(up ? "up" : "down", deployment);
    return;
  }
  await h.t.run(async (ctx) => {
    const row = await ctx.db
      .query("sandboxResources")
      .withIndex("by_provider_and_kind_and_name", (q) => q.eq("provider", "convex").eq("kind", "deployment").eq("name", deployment))
      .unique();
    await ctx.db.patch("sandboxResources", row!._id, { attributes: { ...row!.attributes, paused: up ? "false" : "true" } });
  });
}

/** The event ids the tenant accepted (verified with its secret), in the order it received them. */
async function receivedBy(h: Harness, deployment: string): Promise<string[]> {
  if (h.mode === "sandbox") return h.t.query(internal.sandbox.listTenantEvents, { deploymentName: deployment });
  return h.tenant().accepted(deployment).map((r) => r.eventId ?? "(unparsed)");
}

const deliveriesOf = (h: Harness, instanceId: string) =>
  h.t.run(async (ctx) => (await ctx.db.query("tenantDeliveries").collect()).filter((d) => d.instanceId === instanceId));

/** What still moves, forwards included: a job, a step, a compensation, a send in flight, or a forward due to a tenant that can receive it. */
async function lifecycleInFlight(t: TestBackend): Promise<string[]> {
  const busy = await inFlight(t);
  const now = Date.now();
  const { instances, deliveries } = await t.run(async (ctx) => ({
    instances: await ctx.db.query("instances").collect(),
    deliveries: await ctx.db.query("tenantDeliveries").collect(),
  }));
  const statusOfInstance = new Map(instances.map((i) => [i._id as string, i.status]));
  for (const d of deliveries) {
    if (d.inFlight && d.inFlight.until > now) busy.push(`delivery ${d.eventId} to ${d.instanceId} in flight`);
    const status = statusOfInstance.get(d.instanceId);
    if (d.status === "pending" && status && RECEIVING.has(status)) busy.push(`delivery ${d.eventId} pending for ${status} instance ${d.instanceId}`);
  }
  return busy;
}

/** Until two looks in a row find nothing moving (sandbox: a simulated half second apart; live: after quiesce). */
async function comeToRest(h: Harness) {
  if (h.mode === "live") await h.quiesce();
  let calm = 0;
  try {
    await h.waitUntil(
      "Brain to come to rest",
      async () => {
        calm = (await lifecycleInFlight(h.t)).length === 0 ? calm + 1 : 0;
        if (h.mode === "live" && calm === 1) await sleep(150);
        return calm >= 2;
      },
      { tickMs: 500 },
    );
  } catch {
    // The invariants name whatever is still moving.
  }
}

/**
 * The lifecycle's invariants, every violation collected:
 *   0. the scenario's instances exist, each in the status the row expects, and no other;
 *   1. at rest nothing is in flight: no job running or queued, no step live, no send in flight;
 *   2. every instance is where its subscription says (nextLifecycleJob is null; a grace still
 *      running is fine, its deprovisionAt is in the future);
 *   3. a deleted instance holds no resource and records no resource id; every other instance
 *      holding a stack holds exactly one of each provider's resources, the recorded one; no
 *      Brain-tagged resource without a non-deleted owner, none twice, no Brain-tagged Stripe
 *      webhook endpoint;
 *   4. each job has one job.created and a last terminal entry matching its status; each deleted
 *      instance has a resource.deleted entry for every resource its provisioning made;
 *   5. a suspended instance's deployment is paused and its memberships inactive; an active
 *      one's deployment runs and no membership is inactive;
 *   6. forwarding at rest: nothing pending for an instance that receives (it was all delivered)
 *      or for a deleted one (given up), and one delivery per tenant and event.
 */
async function checkLifecycleInvariants(h: Harness, scenario: Scenario) {
  const { t } = h;
  const violations: string[] = [];
  const config = loadConfig();
  const now = Date.now();
  const { instances, jobs, deliveries } = await t.run(async (ctx) => ({
    instances: await ctx.db.query("instances").collect(),
    jobs: await ctx.db.query("provisioningJobs").collect(),
    deliveries: await ctx.db.query("tenantDeliveries").collect(),
  }));
  const resources = await h.resources();
  const ownedBy = (instanceId: string) => resources.filter((r) => r.brain && r.owner === instanceId);

  // 0. The scenario's instances, and only them.
  for (const [instanceId, expected] of Object.entries(scenario.instances)) {
    const instance = instances.find((i) => i._id === instanceId);
    if (!instance) violations.push(`instance ${instanceId}: missing, expected ${expected}`);
    else if (instance.status !== expected) violations.push(`instance ${instanceId}: ${instance.status}, expected ${expected}`);
  }
  for (const i of instances) {
    if (!(i._id in scenario.instances)) violations.push(`instance ${i._id} (${i.status}, checkout ${i.checkoutSessionId}) exists, but the scenario made no such instance`);
  }

  // 1. At rest.
  for (const busy of await lifecycleInFlight(t)) violations.push(`at rest, still moving: ${busy}`);
  for (const job of jobs) {
    for (const s of job.steps) {
      if (LIVE_STEP_STATUSES.has(s.status)) violations.push(`${job.kind} job ${job._id} (${job.status}): step ${s.name} left ${s.status}`);
    }
  }

  // 2. Where its subscription says.
  for (const i of instances) {
    if (i.status === "provisioning") continue;
    const next = nextLifecycleJob(i, config, now);
    if (next !== null) {
      const grace = i.deprovisionAt !== undefined ? `, deprovisionAt in ${i.deprovisionAt - now} ms` : "";
      violations.push(`instance ${i._id} (${i.status}, subscription ${i.subscription?.status ?? "none applied"}${grace}) still needs a ${next} job`);
    }
  }

  // 3. Resources.
  const notDeleted = new Set<string>(instances.filter((i) => i.status !== "deleted").map((i) => i._id));
  for (const i of instances) {
    if (i.status === "deleted") {
      for (const r of ownedBy(i._id)) violations.push(`deleted instance ${i._id}: ${r.provider} ${r.id} still exists`);
      for (const provider of PROVIDERS) {
        const recorded = recordedId(i, provider);
        if (recorded !== undefined) violations.push(`deleted instance ${i._id}: still records ${provider} ${recorded}`);
      }
      if (i.resources.tenantWebhookSecretCiphertext !== undefined) violations.push(`deleted instance ${i._id}: still records its tenant signing secret`);
    } else if (HOLDING.has(i.status)) {
      for (const provider of PROVIDERS) {
        const held = ownedBy(i._id).filter((r) => r.provider === provider);
        const recorded = recordedId(i, provider);
        if (held.length !== 1) violations.push(`${i.status} instance ${i._id}: ${held.length} ${provider} resources, expected 1`);
        else if (held[0].id !== recorded) violations.push(`${i.status} instance ${i._id}: ${provider} resource ${held[0].id} is not the recorded ${recorded}`);
      }
    }
  }
  const seen = new Map<string, number>();
  for (const r of resources.filter((x) => x.brain)) {
    if (r.provider === "stripe") violations.push(`Brain-tagged Stripe webhook endpoint ${r.id} (${r.name}) exists: no step makes one`);
    else if (r.owner === null || !notDeleted.has(r.owner)) {
      violations.push(`leaked ${r.provider} ${r.id} (${r.name}): ${r.owner ? `instance ${r.owner} is deleted` : "no instance owns it"}`);
    }
    const key = `${r.provider} of ${r.owner ?? r.name}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  for (const [what, count] of seen) if (count > 1) violations.push(`${count} x ${what}: a resource exists twice`);

  // 4. Audit.
  for (const job of jobs) {
    const rows = await t.query(internal.audit.listForJob, { jobId: job._id, limit: 2000 });
    const created = rows.filter((r) => r.action === "job.created").length;
    if (created !== 1) violations.push(`${job.kind} job ${job._id}: ${created} job.created entries, expected 1`);
    const terminal = rows.filter((r) => r.action === "job.succeeded" || r.action === "job.failed").at(-1);
    const expected = job.status === "succeeded" ? "job.succeeded" : job.status === "failed" ? "job.failed" : null;
    if (expected && terminal?.action !== expected) {
      violations.push(`${job.kind} job ${job._id} is ${job.status} but its last terminal audit entry is ${terminal?.action ?? "missing"}`);
    }
  }
  for (const i of instances.filter((x) => x.status === "deleted")) {
    const rows = await t.query(internal.audit.listForInstance, { instanceId: i._id, limit: 2000 });
    const deleted = new Set(rows.filter((r) => r.action === "resource.deleted").map((r) => r.detail));
    const made = jobs.filter((j) => j.instanceId === i._id && j.kind === "provision").map((j) => j.resources ?? {});
    for (const [provider, field] of DELETED_BY_DEPROVISION) {
      for (const id of new Set(made.map((r) => r[field]).filter((x): x is string => x !== undefined))) {
        if (!deleted.has(`${provider} ${id}`)) violations.push(`deleted instance ${i._id}: no resource.deleted entry for ${provider} ${id}`);
      }
    }
  }

  // 5. Suspension at the providers.
  for (const i of instances) {
    if (i.status !== "suspended" && i.status !== "active") continue;
    const { paused, memberships } = await atProviders(h, i);
    if (i.status === "suspended") {
      if (paused !== true) violations.push(`suspended instance ${i._id}: its deployment is ${paused === null ? "missing" : "not paused"}`);
      // A customer who was already a WorkOS user is a member; an invited one is not until they accept.
      if (memberships.length === 0 && i.resources.workosUserId) {
        violations.push(`suspended instance ${i._id}: its organization has no membership`);
      }
      const open = memberships.filter((m) => m !== "inactive");
      if (open.length > 0) violations.push(`suspended instance ${i._id}: memberships still ${open.join(", ")}`);
    } else {
      if (paused !== false) violations.push(`active instance ${i._id}: its deployment is ${paused === null ? "missing" : "paused"}`);
      if (memberships.includes("inactive")) violations.push(`active instance ${i._id}: a membership is inactive`);
    }
  }

  // 6. Forwarding at rest.
  const statusOfInstance = new Map(instances.map((i) => [i._id as string, i.status]));
  const perTenant = new Map<string, number>();
  for (const d of deliveries) {
    const status = statusOfInstance.get(d.instanceId);
    if (d.status === "pending" && (status === "deleted" || (status && RECEIVING.has(status)))) {
      violations.push(`delivery ${d.eventId} to ${status} instance ${d.instanceId} left pending after ${d.attempts} attempts (${d.lastError ?? "no error"})`);
    }
    const key = `${d.instanceId}/${d.eventId}`;
    perTenant.set(key, (perTenant.get(key) ?? 0) + 1);
  }
  for (const [key, count] of perTenant) if (count > 1) violations.push(`${count} deliveries of ${key}`);

  expect(violations).toEqual([]);
}

const LIFECYCLE_ROWS: LifecycleRow[] = [
  {
    name: "a subscription deleted mid-provisioning lets the job finish, then suspends the instance and deprovisions it after the grace, leaving nothing",
    sandbox: "SANDBOX_LATENCY_MS 200, DEPROVISION_GRACE_MS 3600000; customer.subscription.deleted while the provision job runs; the clock passes the grace and the instance's own timer fires",
    live: "Cloudflare POST /pages/projects answers after 800 ms; the same event while the job runs; DEPROVISION_GRACE_MS 3600000, then Date.now moved past it and the backstop (lifecycle.reviewDueDeprovisions) run by hand",
    env: (mode): Record<string, string> => ({ DEPROVISION_GRACE_MS: String(HOUR_MS), ...(mode === "sandbox" ? { SANDBOX_LATENCY_MS: "200" } : {}) }),
    async run(h) {
      if (h.mode === "live") await h.inject({ target: "pagesProject", kind: "slow", latencyMs: 800 });
      const ids = { customerId: uniqueId("cus"), subscriptionId: uniqueId("sub") };
      const { sessionId } = await h.checkout(ids);
      const seen: { job: Job | null } = { job: null };
      await h.waitUntil(
        "the provision job to run",
        async () => {
          seen.job = await h.jobOfSession(sessionId);
          return seen.job?.status === "running";
        },
        { tickMs: 250 },
      );
      const instanceId = seen.job!.instanceId;
      const deleted = subscriptionDeleted(ids);
      expect((await h.deliver(deleted)).status).toBe(200);
      expect(await outcomeOf(h, deleted.id)).toBe("applied");
      // Recorded on the instance while its job runs; nothing else starts yet.
      expect(await kindsOf(h, instanceId)).toEqual(["provision:running"]);
      const recorded = await h.instance(instanceId);
      expect(recorded).toMatchObject({ status: "provisioning", subscription: { subscriptionId: ids.subscriptionId, status: "canceled" } });
      expect(recorded.deprovisionAt).toBeGreaterThan(Date.now());

      await untilJobs(h, instanceId, ["provision:succeeded", "suspend:succeeded"]);
      expect((await h.instance(instanceId)).status).toBe("suspended");
      expect((await statusOf(h.t, sessionId)).body.status).toBe("suspended");

      const due = await graceRunsOut(h, HOUR_MS);
      if (h.mode === "live") expect(due).toBe(1);
      await untilJobs(h, instanceId, ["provision:succeeded", "suspend:succeeded", "deprovision:succeeded"]);
      expect((await h.instance(instanceId)).status).toBe("deleted");
      expect((await statusOf(h.t, sessionId)).body.status).toBe("deleted");
      return { instances: { [instanceId]: "deleted" } };
    },
  },
  {
    name: "a deprovision while providers answer 5xx retries each deletion and ends deleted with every resource gone",
    sandbox: "injectFault deletePagesProject transient x3 and deleteWorkosOrg transient x3; POST /deprovision/:instanceId",
    live: "Cloudflare DELETE /pages/projects/:name and WorkOS DELETE /organizations/:id answer 503 three times each; POST /deprovision/:instanceId",
    async run(h) {
      const [tenant] = await subscribe(h);
      if (h.mode === "sandbox") {
        for (const operation of ["deletePagesProject", "deleteWorkosOrg"]) {
          await h.t.mutation(internal.sandbox.injectFault, { operation, kind: "transient", times: 3 });
        }
      } else {
        h.fakes().cloudflare.inject({ method: "DELETE", path: /\/pages\/projects\/[^/]+$/, status: 503, times: 3 });
        h.fakes().workos.inject({ method: "DELETE", path: /\/organizations\/[^/]+$/, status: 503, times: 3 });
      }
      const answer = await h.admin(`/deprovision/${tenant.instanceId}`, { method: "POST" });
      expect(answer).toEqual({ status: 202, body: { instanceId: tenant.instanceId, status: "deprovisioning" } });
      await untilJobs(h, tenant.instanceId, ["provision:succeeded", "deprovision:succeeded"]);
      const deprovision = (await jobsOf(h, tenant.instanceId))[1];
      expect(stepOf(deprovision, "deletePagesProject")).toMatchObject({ status: "succeeded", attempts: 4, lastError: { class: "transient" } });
      expect(stepOf(deprovision, "deleteWorkosOrg")).toMatchObject({ status: "succeeded", attempts: 4, lastError: { class: "transient" } });
      expect(stepOf(deprovision, "deleteConvexProject")).toMatchObject({ status: "succeeded", attempts: 1 });
      expect((await h.instance(tenant.instanceId)).status).toBe("deleted");
      return { instances: { [tenant.instanceId]: "deleted" } };
    },
  },
  {
    name: "a customer who resubscribes within the grace gets the same instance back, resumed, with no second provisioning",
    sandbox: "DEPROVISION_GRACE_MS 3600000; customer.subscription.deleted, then a paid checkout of the same customer with a new subscription; then the clock passes the old grace (its timer fires and finds nothing to do)",
    live: "the same; Date.now moved past the old grace and the backstop (lifecycle.reviewDueDeprovisions) run by hand",
    env: () => ({ DEPROVISION_GRACE_MS: String(HOUR_MS) }),
    async run(h) {
      const [first] = await subscribe(h);
      const id = first.instanceId;
      expect((await h.deliver(subscriptionDeleted(first))).status).toBe(200);
      await untilJobs(h, id, ["provision:succeeded", "suspend:succeeded"]);
      const suspended = await h.instance(id);
      expect(suspended.status).toBe("suspended");
      expect(suspended.deprovisionAt).toBeGreaterThan(Date.now());

      const subscriptionId = uniqueId("sub");
      const again = await h.checkout({ customerId: first.customerId, subscriptionId });
      expect(again.response.status).toBe(200);
      expect(await outcomeOf(h, again.event.id)).toBe("applied");
      await untilJobs(h, id, ["provision:succeeded", "suspend:succeeded", "resume:succeeded"]);
      const resumed = await h.instance(id);
      expect(resumed).toMatchObject({
        status: "active",
        checkoutSessionId: again.sessionId,
        stripeSubscriptionId: subscriptionId,
        subscription: { subscriptionId, status: "active" },
      });
      expect(resumed.deprovisionAt).toBeUndefined();
      expect(resumed.resources).toEqual(suspended.resources);
      expect((await statusOf(h.t, again.sessionId)).body).toMatchObject({ status: "ready", instanceId: id });

      // The old grace runs out: nothing is due, nothing happens.
      const due = await graceRunsOut(h, HOUR_MS);
      if (h.mode === "live") expect(due).toBe(0);
      await comeToRest(h);
      expect(await kindsOf(h, id)).toEqual(["provision:succeeded", "suspend:succeeded", "resume:succeeded"]);
      return { instances: { [id]: "active" } };
    },
  },
  {
    name: "customer.subscription.updated (active) arriving after customer.subscription.deleted, though older, is stale and does not resurrect the instance",
    sandbox: "deleted (created t+2 s), then updated active (created t+1 s) as the suspension starts; DEPROVISION_GRACE_MS 3600000",
    live: "same",
    env: () => ({ DEPROVISION_GRACE_MS: String(HOUR_MS) }),
    async run(h) {
      const [tenant] = await subscribe(h);
      const t0 = nowSeconds();
      const deleted = subscriptionDeleted(tenant, t0 + 2);
      const updated = subscriptionEvent({ subscriptionId: tenant.subscriptionId, customerId: tenant.customerId, status: "active", created: t0 + 1 });
      expect((await h.deliver(deleted)).status).toBe(200);
      expect(await outcomeOf(h, deleted.id)).toBe("applied");
      expect((await h.deliver(updated)).status).toBe(200);
      expect(await outcomeOf(h, updated.id)).toBe("stale");
      await untilJobs(h, tenant.instanceId, ["provision:succeeded", "suspend:succeeded"]);
      const instance = await h.instance(tenant.instanceId);
      expect(instance).toMatchObject({ status: "suspended", subscription: { status: "canceled", source: deleted.id } });
      expect(instance.deprovisionAt).toBeGreaterThan(Date.now());
      return { instances: { [tenant.instanceId]: "suspended" } };
    },
  },
  {
    name: "reconciliation finds missed webhooks: a paid checkout never heard of is provisioned, and a cancelled subscription still running is suspended for its grace",
    sandbox: "internal.sandbox.seedStripe: an active subscription and its paid Checkout Session whose webhook never came, and a provisioned tenant's subscription set canceled with no customer.subscription.deleted; POST /admin/reconcile { dryRun: false }; DEPROVISION_GRACE_MS 3600000",
    live: "the same in the Stripe fake (addSubscription, addCheckoutSession, setSubscriptionStatus), listed by the live Stripe adapter",
    env: () => ({ DEPROVISION_GRACE_MS: String(HOUR_MS) }),
    async run(h) {
      const [cancelled] = await subscribe(h);
      await stripeHasSubscription(h, { ...cancelled, status: "active" });
      const reconcile = () => h.admin("/admin/reconcile", { method: "POST", body: { dryRun: false } });
      expect(await reconcile()).toEqual({ status: 200, body: { dryRun: false, braked: false, differences: [], applied: [] } });

      // Two webhooks go missing: a new paid checkout's, and the cancellation's.
      const missed = { sessionId: uniqueId("cs_test"), subscriptionId: uniqueId("sub"), customerId: uniqueId("cus") };
      await stripeHasSubscription(h, { ...missed, status: "active" });
      await stripeHasPaidCheckout(h, missed);
      await stripeChangesStatus(h, cancelled.subscriptionId, "canceled");
      const before = Date.now();
      const run = await reconcile();
      expect(run.status).toBe(200);
      expect(run.body).toMatchObject({ dryRun: false, braked: false });
      expect(run.body.differences).toHaveLength(2);
      expect(run.body.differences).toEqual(
        expect.arrayContaining([
          { type: "paid_not_provisioned", subscriptionId: missed.subscriptionId, checkoutSessionId: missed.sessionId, action: "provision" },
          { type: "cancelled_still_running", subscriptionId: cancelled.subscriptionId, instanceId: cancelled.instanceId, action: "deprovision" },
        ]),
      );
      expect((run.body.applied as { action: string; result: string }[]).map((a) => [a.action, a.result]).sort()).toEqual([
        ["deprovision", `applied: ${cancelled.subscriptionId} canceled`],
        ["provision", expect.stringMatching(/^provisioning_started: job /)],
      ]);

      const ready = await h.settle(missed.sessionId);
      expectStatus(ready, "ready");
      expect(await h.instance(ready.instanceId!)).toMatchObject({
        status: "active",
        checkoutSessionId: missed.sessionId,
        stripeSubscriptionId: missed.subscriptionId,
        stripeCustomerId: missed.customerId,
      });
      await untilJobs(h, cancelled.instanceId, ["provision:succeeded", "suspend:succeeded"]);
      const suspended = await h.instance(cancelled.instanceId);
      expect(suspended).toMatchObject({ status: "suspended", subscription: { subscriptionId: cancelled.subscriptionId, status: "canceled" } });
      expect(suspended.deprovisionAt).toBeGreaterThanOrEqual(before + HOUR_MS);
      expect(suspended.deprovisionAt).toBeLessThanOrEqual(Date.now() + HOUR_MS);
      expect(await h.t.query(internal.reconciliation.getLastRun, {})).toMatchObject({ dryRun: false, braked: false });
      return { instances: { [ready.instanceId!]: "active", [cancelled.instanceId]: "suspended" } };
    },
  },
  {
    name: "reconciliation's safety brake: three cancellations over RECONCILE_MAX_CHANGES 2 apply nothing, and the braked run is stored",
    sandbox: "three provisioned tenants whose subscriptions internal.sandbox.seedStripe lists as canceled (no webhook sent); RECONCILE_MAX_CHANGES 2; POST /admin/reconcile { dryRun: false }",
    live: "the same subscriptions in the Stripe fake (addSubscription with status canceled)",
    env: () => ({ RECONCILE_MAX_CHANGES: "2" }),
    async run(h) {
      const tenants = await subscribe(h, 3);
      for (const tenant of tenants) await stripeHasSubscription(h, { ...tenant, status: "canceled" });
      const run = await h.admin("/admin/reconcile", { method: "POST", body: { dryRun: false } });
      expect(run.status).toBe(200);
      expect(run.body).toMatchObject({ dryRun: false, braked: true, applied: [] });
      const wouldDeprovision = tenants.map((tenant) => ({
        type: "cancelled_still_running",
        subscriptionId: tenant.subscriptionId,
        instanceId: tenant.instanceId,
        action: "deprovision",
      }));
      expect(run.body.differences).toHaveLength(3);
      expect(run.body.differences).toEqual(expect.arrayContaining(wouldDeprovision));

      await comeToRest(h);
      for (const tenant of tenants) {
        const instance = await h.instance(tenant.instanceId);
        expect(instance.status).toBe("active");
        expect(instance.deprovisionAt).toBeUndefined();
        expect(await kindsOf(h, tenant.instanceId)).toEqual(["provision:succeeded"]);
      }
      const stored = await h.t.query(internal.reconciliation.getLastRun, {});
      expect(stored).toMatchObject({ dryRun: false, braked: true, applied: [] });
      expect(stored!.differences).toEqual(expect.arrayContaining(wouldDeprovision));
      const alerts = await h.t.run((ctx) =>
        ctx.db
          .query("auditLogs")
          .withIndex("by_action", (q) => q.eq("action", "reconcile.braked"))
          .collect(),
      );
      expect(alerts).toHaveLength(1);
      return { instances: Object.fromEntries(tenants.map((tenant): [string, InstanceStatus] => [tenant.instanceId, "active"])) };
    },
  },
  {
    name: "a tenant down for an hour while its events queue receives every one afterwards, exactly once, in Stripe's created order, each verified with its own secret",
    sandbox:
      "the sandbox tenant answers 503 (its deployment's paused attribute) for an hour of simulated time; invoice.paid, customer.subscription.updated (same status) and a late invoice.paid older than the update arrive during it; RETRY_BASE_DELAY_MS 1000 and RETRY_MAX_DELAY_MS 300000, so the hour is about twenty tries; internal.sandbox.listTenantEvents (it records an event once by id, so exactly once is read off the delivery rows)",
    live: "the tenant app fake answers 503 (tests/fakes/tenant.ts, verifying with stripe-node constructEvent and the deployment's STRIPE_WEBHOOK_SECRET); an hour of real time is impossible: Date.now jumps the hour in 10 and 20 minute steps while the real outage lasts about a second of retries (RETRY_MAX_DELAY_MS 200)",
    env: (mode): Record<string, string> => (mode === "sandbox" ? { RETRY_BASE_DELAY_MS: "1000", RETRY_MAX_DELAY_MS: "300000" } : {}),
    async run(h) {
      const [tenant] = await subscribe(h);
      const deployment = (await h.instance(tenant.instanceId)).resources.convexDeploymentName!;
      // The checkout itself is the tenant's first event.
      await h.waitUntil("the checkout event to reach the tenant", async () => (await receivedBy(h, deployment)).length === 1, { tickMs: 100 });
      expect(await receivedBy(h, deployment)).toEqual([tenant.checkoutEventId]);

      await setTenantUp(h, deployment, false);
      await passTime(h, 10 * 60_000);
      const paid = invoicePaid(tenant);
      expect((await h.deliver(paid)).status).toBe(200);
      await passTime(h, 20 * 60_000);
      const updated = subscriptionEvent({ subscriptionId: tenant.subscriptionId, customerId: tenant.customerId, status: "active" });
      expect((await h.deliver(updated)).status).toBe(200);
      expect(await outcomeOf(h, updated.id)).toBe("applied");
      await passTime(h, 10 * 60_000);
      // Stripe delivers out of order: an invoice event created ten minutes after the first, older than the update, arrives after it.
      const late = invoicePaid(tenant, paid.created + 600);
      expect((await h.deliver(late)).status).toBe(200);
      await passTime(h, 20 * 60_000);

      // An hour down: the tenant has accepted nothing more, and its oldest event has been tried again and again.
      expect(await receivedBy(h, deployment)).toEqual([tenant.checkoutEventId]);
      const waiting = (await deliveriesOf(h, tenant.instanceId)).find((d) => d.eventId === paid.id)!;
      expect(waiting).toMatchObject({ status: "pending", lastStatus: 503 });
      expect(waiting.attempts).toBeGreaterThanOrEqual(2);
      if (h.mode === "live") {
        // Only the oldest event is tried while the tenant is down: the others wait behind it.
        const refused = h.tenant().requests.filter((r) => r.deployment === deployment && r.answer === "down");
        expect(refused.length).toBeGreaterThanOrEqual(2);
        expect(new Set(refused.map((r) => r.eventId))).toEqual(new Set([paid.id]));
      }

      await setTenantUp(h, deployment, true);
      await h.waitUntil(
        "every queued event to be delivered",
        async () => (await deliveriesOf(h, tenant.instanceId)).every((d) => d.status === "delivered"),
        { tickMs: 1_000, growTick: 1.5 },
      );
      const order = [tenant.checkoutEventId, paid.id, late.id, updated.id];
      expect(await receivedBy(h, deployment)).toEqual(order);
      const rows = await deliveriesOf(h, tenant.instanceId);
      expect(rows.map((d) => d.eventId).sort()).toEqual([...order].sort());
      for (const d of rows) expect(d).toMatchObject({ status: "delivered", lastStatus: 200 });
      if (h.mode === "live") {
        // Each accepted request was verified by the tenant with its secret; none was rejected. Only
        // this tenant's requests count: a busy machine has seen an earlier test's leftover forwards
        // (other deployments, other secrets) reach this fake on a reused port.
        expect(h.tenant().requests.filter((r) => r.deployment === deployment && r.answer === "rejected")).toEqual([]);
      }
      // The same status changed nothing: no lifecycle job.
      expect(await kindsOf(h, tenant.instanceId)).toEqual(["provision:succeeded"]);
      return { instances: { [tenant.instanceId]: "active" } };
    },
  },
];

/** The signing secret configureBackend set on a live fake deployment (undefined when it has none). */
function liveTenantSecret(fakes: Fakes, deployment: string): string | undefined {
  try {
    return fakes.convex.envVars(deployment).STRIPE_WEBHOOK_SECRET;
  } catch {
    return undefined; // no such deployment
  }
}

// ---------------------------------------------------------------------------------------

describe.each(["sandbox", "live"] as const)("chaos on %s providers", (mode) => {
  let fakes: Fakes | undefined;

  beforeEach(async () => {
    if (mode === "sandbox") vi.useFakeTimers();
    // Fresh fakes per test: convex-test hands out the same ids in every backend.
    else fakes = await startFakes();
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    vi.useRealTimers();
    await fakes?.close();
    fakes = undefined;
  });

  for (const row of ROWS) test(row.name, { timeout: row.timeoutMs }, async () => {
    const env =
      mode === "sandbox"
        ? { ...BASE_ENV, SANDBOX_LATENCY_MS: "5", ...row.env?.(mode) }
        : { ...fakes!.env, ...BASE_ENV, ...row.env?.(mode) };
    const t = setupBackend({ env });
    if (fakes) fakes.attach(t);
    const h = createHarness(mode, t, fakes);
    const paid = await row.run(h);
    await h.quiesce();
    await checkInvariants(h, paid);
  });

  for (const row of LIFECYCLE_ROWS) test(row.name, { timeout: row.timeoutMs }, async () => {
    // Live: the tenants Brain forwards to are a local fake app fleet, not *.convex.site.
    const tenant = fakes ? await startTenantFake({ secretFor: (deployment) => liveTenantSecret(fakes!, deployment) }) : undefined;
    try {
      const env =
        mode === "sandbox"
          ? { ...BASE_ENV, SANDBOX_LATENCY_MS: "5", ...row.env?.(mode) }
          : { ...fakes!.env, ...BASE_ENV, TENANT_EVENTS_URL_TEMPLATE: `${tenant!.url}/{deployment}/stripe/events`, ...row.env?.(mode) };
      const t = setupBackend({ env });
      if (fakes) fakes.attach(t);
      const h = createHarness(mode, t, fakes, tenant);
      const scenario = await row.run(h);
      await comeToRest(h);
      await checkLifecycleInvariants(h, scenario);
    } finally {
      await tenant?.close();
    }
  });
});
