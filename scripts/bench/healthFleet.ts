// A simulated fleet for the health scale test (tests/healthScale.test.ts) and `npm run
// bench:health`: N live instances seeded straight into the database with their sandbox
// resources, the health cron driven on fake timers, and what one round costs, metered.
import { vi } from "vitest";
import { internal } from "../../convex/_generated/api";
import { PROVIDERS } from "../../convex/registry";
import type { Id } from "../../convex/_generated/dataModel";
import type { TestBackend } from "../../tests/harness";
import { CostMeter } from "./cost.meter";

export const MINUTE = 60_000;
const PLANS = ["starter", "pro"];
const SEED_CHUNK = 500;

/**
 * The simulated providers' own work is left out: in live mode a probe is an HTTP request, not a
 * Convex function, and the sandbox's tables stand for the providers' state.
 */
export const SANDBOX_FUNCTIONS = new Set(["sandbox:applyOperation", "sandbox:probeTargets"]);
export const SANDBOX_TABLES = new Set(["app:sandboxResources", "app:sandboxFaults"]);

/** Inserts `count` active instances (plans alternating) and the sandbox resources they probe. */
export async function seedFleet(t: TestBackend, count: number): Promise<Id<"instances">[]> {
  const ids: Id<"instances">[] = [];
  const now = Date.now();
  const customerId = await t.run((ctx) => ctx.db.insert("customers", { email: "fleet@example.com", createdAt: now }));
  for (let start = 0; start < count; start += SEED_CHUNK) {
    const chunk = await t.run(async (ctx) => {
      const made: Id<"instances">[] = [];
      for (let i = start; i < Math.min(count, start + SEED_CHUNK); i++) {
        const id = await ctx.db.insert("instances", {
          customerId,
          checkoutSessionId: `cs_fleet_${i}`,
          plan: PLANS[i % PLANS.length],
          status: "active",
          resources: {},
          createdAt: now + i,
        });
        const pages = `brain-${id}`;
        const deployment = `fleet-${i}`;
        const organization = `org_fleet_${i}`;
        await ctx.db.patch("instances", id, {
          resources: {
            pagesProjectName: pages,
            pagesSubdomain: `${pages}.pages.dev`,
            convexDeploymentName: deployment,
            convexDeploymentUrl: `https://${deployment}.convex.cloud`,
            workosOrganizationId: organization,
          },
        });
        const resource = (provider: "cloudflare" | "convex" | "workos", kind: string, name: string, externalId: string, attributes = {}) =>
          ctx.db.insert("sandboxResources", { provider, kind, name, externalId, attributes, createdAt: now, updatedAt: now });
        await resource("cloudflare", "pagesProject", pages, `pagesProject_${i}`);
        await resource("convex", "deployment", deployment, `deployment_${i}`);
        await resource("workos", "organization", id, organization, { managedBy: "brain", displayName: `fleet ${i}` });
        made.push(id);
      }
      return made;
    });
    ids.push(...chunk);
  }
  return ids;
}

/**
 * Lets `ms` of simulated time pass a second at a time, running whatever comes due and waiting
 * for it to finish before the clock moves on (the work pool's loop hands work from one
 * scheduled function to the next within the same instant; a synchronous timer jump can leave
 * that chain behind). Actions must not sleep on the fake clock here: set SANDBOX_LATENCY_MS=0.
 */
export async function passTime(t: TestBackend, ms: number) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await vi.advanceTimersByTimeAsync(Math.min(1000, end - Date.now()));
    await t.finishInProgressScheduledFunctions();
  }
}

/** The health cron for `minutes` minutes: runHealthChecks at the start of each minute. */
export async function runCron(t: TestBackend, minutes: number, everyMinute?: (minute: number) => Promise<void>) {
  for (let minute = 0; minute < minutes; minute++) {
    await t.mutation(internal.monitoring.runHealthChecks, {});
    await everyMinute?.(minute);
    await passTime(t, MINUTE);
  }
}

/** Every member's last check time, by instance. */
export async function checkTimes(t: TestBackend): Promise<Map<string, number | undefined>> {
  const batches = await t.run((ctx) => ctx.db.query("healthBatches").collect());
  return new Map(batches.flatMap((b) => b.members.map((m) => [m.instanceId as string, m.checkedAt] as const)));
}

/**
 * The first round over a freshly enrolled fleet, every instance due at once (the worst case the
 * spread rounds never meet): simulated time from the cron's call to the last instance checked.
 */
export async function coldRound(t: TestBackend, count: number): Promise<number> {
  const start = Date.now();
  await t.mutation(internal.monitoring.runHealthChecks, {});
  for (;;) {
    await passTime(t, 1000);
    const times = await checkTimes(t);
    const checked = [...times.values()].filter((at) => at !== undefined).length;
    if (checked === count) return Math.max(...[...times.values()].map((at) => at!)) - start;
    if (Date.now() - start > 60 * MINUTE) throw new Error(`cold round: only ${checked} of ${count} checked after an hour`);
  }
}

export type RoundCost = {
  functionCallsPerInstance: number;
  readsPerInstance: number;
  writesPerInstance: number;
  /** Instances checked exactly once during the metered interval (should be all). */
  checkedOnce: number;
  byFunction: Record<string, number>;
};

/** Meters one whole interval of the cron over a healthy, already checked fleet. */
export async function steadyRound(t: TestBackend, count: number, intervalMs: number): Promise<RoundCost> {
  const meter = new CostMeter(SANDBOX_FUNCTIONS, SANDBOX_TABLES).install();
  try {
    const before = await checkTimes(t);
    meter.on = true;
    await runCron(t, Math.round(intervalMs / MINUTE));
    meter.on = false;
    const after = await checkTimes(t);
    let checkedOnce = 0;
    for (const [id, at] of after) {
      const previous = before.get(id);
      if (at !== undefined && previous !== undefined && at > previous && at - previous <= intervalMs + MINUTE) checkedOnce++;
    }
    const totals = meter.totals();
    const per = (n: number) => n / count;
    const byFunction: Record<string, number> = {};
    for (const [key, calls] of meter.calls) byFunction[key] = per(calls);
    return {
      functionCallsPerInstance: per(totals.functionCalls),
      readsPerInstance: per(totals.reads),
      writesPerInstance: per(totals.writes),
      checkedOnce,
      byFunction,
    };
  } finally {
    meter.uninstall();
  }
}

/**
 * The provider API requests made while `run` runs, by provider: every adapter, sandbox or live,
 * logs one `provider.call` line per request (a sandbox listing, one per page, paged as the live
 * SDK pages). Probes of tenant sites and backends are not API requests and are not counted.
 */
export async function countProviderRequests<T>(run: () => Promise<T>): Promise<{ result: T; requests: Record<string, number> }> {
  const requests: Record<string, number> = {};
  const levels = ["info", "warn", "error"] as const;
  const originals = levels.map((level) => console[level]);
  levels.forEach((level, i) => {
    console[level] = (...args: unknown[]) => {
      const line = args[0];
      if (typeof line === "string" && line.includes('"event":"provider.call"')) {
        const { provider } = JSON.parse(line) as { provider: string };
        requests[provider] = (requests[provider] ?? 0) + 1;
        return;
      }
      originals[i].apply(console, args);
    };
  });
  try {
    return { result: await run(), requests };
  } finally {
    levels.forEach((level, i) => (console[level] = originals[i]));
  }
}

/** A provider's request budget over `windowMs`: its RATE_LIMIT_<PROVIDER>_RPS (or default) times the window. */
export function budgetOver(provider: "convex" | "workos" | "cloudflare", windowMs: number): number {
  const { variable, default: fallback } = PROVIDERS[provider].rate;
  const rps = Number(process.env[variable] ?? fallback);
  return Math.floor((rps * windowMs) / 1000);
}

/**
 * One interval of the cron with the fleet-wide deep sweep due at its start (the interval that
 * costs the providers most): the API requests it made, by provider, and whether the sweep finished.
 */
export async function intervalWithDeepSweep(t: TestBackend, intervalMs: number) {
  const start = Date.now();
  await t.run(async (ctx) => {
    const schedule = await ctx.db.query("healthSchedule").first();
    if (schedule) await ctx.db.patch("healthSchedule", schedule._id, { deepDueAt: start });
  });
  const { requests } = await countProviderRequests(() => runCron(t, Math.round(intervalMs / MINUTE)));
  const schedule = await t.run((ctx) => ctx.db.query("healthSchedule").first());
  const sweep = schedule?.lastDeepSweep && schedule.lastDeepSweep.startedAt >= start ? schedule.lastDeepSweep : undefined;
  return { requests, sweep };
}

/** A small seeded PRNG (mulberry32), so a benchmark's random moments repeat with its seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export type Detection = { instanceId: string; darkAt: number; downAt?: number; alertAt?: number };

/**
 * Mean time to detect: `samples` instances' sites go dark at random moments (second resolution)
 * spread over one interval, with the cron running every minute; for each, the time from going
 * dark to its confirmed `down` status (its incident opening) and to its alert going out.
 */
export async function measureDetection(
  t: TestBackend,
  ids: readonly string[],
  options: { samples: number; seed: number; intervalMs: number; alertAfterMs: number },
): Promise<{ down: number; alert: number; detections: Detection[] }> {
  const random = seeded(options.seed);
  const chosen = new Set<string>();
  while (chosen.size < Math.min(options.samples, ids.length)) chosen.add(ids[Math.floor(random() * ids.length)]);
  const start = Date.now();
  const pending: Detection[] = [...chosen]
    .map((instanceId) => ({ instanceId, darkAt: start + Math.floor((random() * options.intervalMs) / 1000) * 1000 }))
    .sort((a, b) => a.darkAt - b.darkAt);
  const detections = [...pending];
  const deadline = start + options.intervalMs + options.alertAfterMs + 15 * MINUTE;
  while (detections.some((d) => d.alertAt === undefined) && Date.now() < deadline) {
    await t.mutation(internal.monitoring.runHealthChecks, {});
    for (let second = 0; second < 60; second++) {
      while (pending.length > 0 && pending[0].darkAt <= Date.now()) {
        const { instanceId } = pending.shift()!;
        await t.mutation(internal.sandbox.injectFault, { operation: "probeSite", times: 100_000, kind: "transient", instanceId: instanceId as Id<"instances"> });
      }
      await vi.advanceTimersByTimeAsync(1000);
      await t.finishInProgressScheduledFunctions();
    }
    for (const detection of detections) {
      if (detection.alertAt !== undefined || detection.darkAt > Date.now()) continue;
      const incident = await t.run((ctx) =>
        ctx.db
          .query("incidents")
          .withIndex("by_instanceId_and_status", (q) => q.eq("instanceId", detection.instanceId as Id<"instances">).eq("status", "open"))
          .first(),
      );
      if (incident) {
        detection.downAt = incident.openedAt;
        detection.alertAt = incident.alertedAt;
      }
    }
  }
  const missed = detections.filter((d) => d.alertAt === undefined);
  if (missed.length > 0) throw new Error(`${missed.length} of ${detections.length} outages were not alerted by the deadline`);
  const mean = (values: number[]) => Math.round(values.reduce((a, b) => a + b, 0) / values.length);
  return {
    down: mean(detections.map((d) => d.downAt! - d.darkAt)),
    alert: mean(detections.map((d) => d.alertAt! - d.darkAt)),
    detections,
  };
}
