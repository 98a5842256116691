// @vitest-environment node
// The README's first command, as a new user runs it: `npm start` serves Brain offline,
// provisions a signed test checkout and (with --once) exits 0 once it is ready. Also the parts
// it runs on: the embedded backend's components, its cron runner, and its health lines.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { cronJobs, makeFunctionReference } from "convex/server";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { components } from "../convex/_generated/api";
import { describeSchedule, nextRunAt, startCronRunner, type CronJobs, type CronRun } from "../scripts/cron-runner";
import { startEmbeddedBackend, startEmbeddedCrons } from "../scripts/embedded-backend";
import { describeHealthChanges, EMPTY_HEALTH, type HealthSnapshot } from "../scripts/health-watch";

function runServe(args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn("npx", ["tsx", "scripts/serve.ts", ...args], {
      env: { ...process.env, PORT: "0", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("npm start (offline embedded backend)", () => {
  test("serves the routes, provisions its signed test checkout to ready and exits 0 with --once", async () => {
    const { code, stdout } = await runServe(["--once", "--latency", "20"]);
    expect(stdout).toMatch(/Brain is running offline on http:\/\/127\.0\.0\.1:\d+/);
    expect(stdout).toMatch(/admin token: [0-9a-f]{48}/);
    expect(stdout).toMatch(/status page: http:\/\/127\.0\.0\.1:\d+\/status\?session_id=cs_test_/);
    expect(stdout).toMatch(/\[100%\] 9\/9 ready {2}https:\/\/brain-[a-z0-9-]+\.pages\.dev/);
    expect(stdout).toContain("Ready in");
    expect(stdout).toMatch(/crons: \d+ jobs from convex\/crons\.ts on real timers/);
    expect(stdout).toContain("health: HEALTH_CHECK_INTERVAL_MS=60000 (demo default)");
    expect(code).toBe(0);
  }, 120_000);

  test("says which health settings come from the environment, and starts an outage after ready with --outage", async () => {
    const { code, stdout } = await runServe(["--once", "--latency", "20", "--outage", "3"], { ALERT_AFTER_MS: "120000" });
    expect(stdout).toContain("ALERT_AFTER_MS=120000 (from the environment)");
    expect(stdout).toContain("HEALTH_CONFIRM_INTERVAL_MS=5000 (demo default)");
    expect(stdout).toMatch(/Ready in[^\n]*instance (\w+)[^\n]*\nOutage: instance \1's site fails its next 3 health probes/);
    expect(code).toBe(0);
  }, 120_000);

  test("rejects a malformed --outage option with a clear message", async () => {
    const { code, stderr } = await runServe(["--once", "--outage", "soon"]);
    expect(stderr).toContain("--outage expects the number of health probes");
    expect(code).toBe(1);
  }, 120_000);

  test("exits non-zero when the test checkout fails", async () => {
    const { code, stdout } = await runServe(["--once", "--latency", "20", "--fail", "pagesProject:permanent:1"]);
    expect(stdout).toContain("injected fault: pagesProject fails 1x (permanent)");
    expect(stdout).toMatch(/Provisioning failed after .* pagesProject \(permanent\)/);
    expect(code).toBe(1);
  }, 120_000);

  test("hands each request's socket address to the backend as its source: a blocked address is 127.0.0.1, not unknown", async () => {
    const child = spawn("npx", ["tsx", "scripts/serve.ts", "--latency", "20"], {
      env: { ...process.env, PORT: "0", CI: "false", SECURITY_ADMIN_FAILURE_THRESHOLD: "1" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    try {
      let stdout = "";
      const started = await new Promise<{ base: string; token: string }>((resolve, reject) => {
        child.stdout.on("data", (chunk) => {
          stdout += chunk;
          const base = /running offline on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1];
          const token = /admin token: ([0-9a-f]+)\n/.exec(stdout)?.[1];
          if (base && token) resolve({ base, token });
        });
        child.on("close", (code) => reject(new Error(`serve exited ${code}: ${stdout}`)));
      });
      // A fresh connection per request (no keep-alive reuse racing the server's idle timeout).
      const headers = { connection: "close" };
      const guess = () =>
        fetch(`${started.base}/admin/circuits`, { headers: { ...headers, Authorization: "Bearer guess-guess-guess-guess", "X-Forwarded-For": "192.0.2.1" } });
      expect((await guess()).status).toBe(401);
      expect((await guess()).status).toBe(403);
      const listed = await fetch(`${started.base}/admin/security-events`, { headers: { ...headers, Authorization: `Bearer ${started.token}` } });
      const { events } = (await listed.json()) as { events: { kind: string; source: string }[] };
      expect(events).toEqual([expect.objectContaining({ kind: "admin_auth_failures", source: "127.0.0.1" })]);
    } finally {
      if (child.pid) process.kill(-child.pid, "SIGTERM");
    }
  }, 120_000);

  test("rejects a malformed --fail option with a clear message", async () => {
    const { code, stderr } = await runServe(["--once", "--fail", "nonsense"]);
    expect(stderr).toContain("--fail expects");
    expect(code).toBe(1);
  }, 120_000);
});

describe("embedded backend", () => {
  test("registers every work pool and the healthCounts aggregate that convex.config.ts declares", async () => {
    const t = await startEmbeddedBackend();
    const config = readFileSync(new URL("../convex/convex.config.ts", import.meta.url), "utf8");
    const pools = [...config.matchAll(/app\.use\(workpool, \{ name: "(\w+)" \}\)/g)].map((match) => match[1]!);
    expect(pools).toContain("healthPool");
    type Pools = Record<string, typeof components.healthPool>;
    for (const pool of pools) {
      await expect(t.query((components as unknown as Pools)[pool]!.lib.statusBatch, { ids: [] })).resolves.toEqual([]);
    }
    await expect(t.query(components.healthCounts.btree.aggregateBetween, {})).resolves.toMatchObject({ count: 0 });
  }, 60_000);

  test("runs the jobs convex/crons.ts declares, each as the mutation or action it is", async () => {
    const t = await startEmbeddedBackend();
    const declared = ((await import("../convex/crons")).default as unknown as CronJobs).crons;
    const runner = await startEmbeddedCrons(t);
    expect(runner.jobs.map((job) => job.identifier)).toEqual(Object.keys(declared));
    await runner.stop();

    vi.useFakeTimers();
    try {
      const errors: string[] = [];
      const crons = cronJobs();
      crons.interval("a mutation", { seconds: 1 }, makeFunctionReference<"mutation">("provisioning:runWatchdog"), {});
      crons.interval("an action", { seconds: 1 }, makeFunctionReference<"action">("monitoring:checkInstanceHealth"), {
        instanceId: "no-such-instance",
      });
      const jobs = crons as unknown as CronJobs;
      // cronJobs() refuses a query; a hand-written entry shows what the runner does with one.
      jobs.crons["a query"] = { name: "monitoring:listCircuits", args: [{ now: 0 }], schedule: { type: "interval", seconds: 1 } };
      const probe = await startEmbeddedCrons(t, {
        jobs,
        onError: (run, error) => errors.push(`${run.identifier}: ${String(error)}`),
      });
      await vi.advanceTimersByTimeAsync(1000);
      await probe.stop();
      expect(errors).toEqual([expect.stringMatching(/^a query: .*monitoring:listCircuits is not a mutation or an action/)]);
    } finally {
      vi.useRealTimers();
    }
  }, 60_000);
});

describe("cron runner", () => {
  const START = Date.UTC(2026, 0, 5, 10, 0, 30); // a Monday, 10:00:30 UTC
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START);
  });
  afterEach(() => vi.useRealTimers());

  function record() {
    const runs: { identifier: string; at: number; args: unknown }[] = [];
    const run = async (job: CronRun) => {
      runs.push({ identifier: job.identifier, at: Date.now(), args: job.args });
    };
    return { runs, run };
  }

  test("runs an interval job every interval, with the arguments crons.ts gave it", async () => {
    const crons = cronJobs();
    crons.interval("health checks", { minutes: 1 }, makeFunctionReference<"mutation">("monitoring:runHealthChecks"), { batch: 3 });
    const { runs, run } = record();
    const runner = startCronRunner(crons as unknown as CronJobs, run);
    await vi.advanceTimersByTimeAsync(59_999);
    expect(runs).toEqual([]);
    await vi.advanceTimersByTimeAsync(2 * 60_000 + 1);
    expect(runs).toEqual([
      { identifier: "health checks", at: START + 60_000, args: { batch: 3 } },
      { identifier: "health checks", at: START + 120_000, args: { batch: 3 } },
      { identifier: "health checks", at: START + 180_000, args: { batch: 3 } },
    ]);
    await runner.stop();
  });

  test("runs hourly and daily jobs at their next UTC wall-clock time", async () => {
    const crons = cronJobs();
    crons.hourly("hourly", { minuteUTC: 17 }, makeFunctionReference<"action">("orphans:scanOrphans"), {});
    crons.daily("daily", { hourUTC: 11, minuteUTC: 5 }, makeFunctionReference<"action">("reconciliation:runReconciliation"), {});
    const { runs, run } = record();
    const runner = startCronRunner(crons as unknown as CronJobs, run);
    await vi.advanceTimersByTimeAsync(2 * 60 * 60_000);
    expect(runs.map((r) => [r.identifier, new Date(r.at).toISOString()])).toEqual([
      ["hourly", "2026-01-05T10:17:00.000Z"],
      ["daily", "2026-01-05T11:05:00.000Z"],
      ["hourly", "2026-01-05T11:17:00.000Z"],
    ]);
    await runner.stop();
  });

  test("computes the next time of weekly, monthly and cron-string schedules in UTC", () => {
    const iso = (ms: number) => new Date(ms).toISOString();
    expect(iso(nextRunAt({ type: "weekly", dayOfWeek: "wednesday", hourUTC: 4, minuteUTC: 30 }, START))).toBe("2026-01-07T04:30:00.000Z");
    expect(iso(nextRunAt({ type: "monthly", day: 31, hourUTC: 0 }, Date.UTC(2026, 1, 1)))).toBe("2026-03-31T00:00:00.000Z");
    expect(iso(nextRunAt({ type: "cron", cron: "*/15 9-17 * * 1-5" }, START))).toBe("2026-01-05T10:15:00.000Z");
    expect(iso(nextRunAt({ type: "cron", cron: "0 0 1 * 0" }, START))).toBe("2026-01-11T00:00:00.000Z");
    expect(describeSchedule({ type: "interval", minutes: 1 })).toBe("every 1 min");
    expect(describeSchedule({ type: "daily", hourUTC: 4, minuteUTC: 23 })).toBe("daily at 04:23 UTC");
  });

  test("reports a failing run and keeps the job on its schedule", async () => {
    const crons = cronJobs();
    crons.interval("flaky", { seconds: 10 }, makeFunctionReference<"mutation">("x:y"), {});
    const failures: string[] = [];
    let calls = 0;
    const runner = startCronRunner(
      crons as unknown as CronJobs,
      async () => {
        calls++;
        throw new Error(`boom ${calls}`);
      },
      { onError: (job, error) => failures.push(`${job.identifier}: ${(error as Error).message}`) },
    );
    await vi.advanceTimersByTimeAsync(30_000);
    expect(failures).toEqual(["flaky: boom 1", "flaky: boom 2", "flaky: boom 3"]);
    await runner.stop();
  });

  test("skips a run while the previous run of the same job is still going", async () => {
    const crons = cronJobs();
    crons.interval("slow", { seconds: 10 }, makeFunctionReference<"action">("x:y"), {});
    const skipped: number[] = [];
    let started = 0;
    const runner = startCronRunner(
      crons as unknown as CronJobs,
      async () => {
        started++;
        await new Promise((resolve) => setTimeout(resolve, 25_000));
      },
      { onSkip: () => skipped.push(Date.now() - START) },
    );
    await vi.advanceTimersByTimeAsync(40_000);
    expect(started).toBe(2); // at 10 s, then at 40 s once the first run ended at 35 s
    expect(skipped).toEqual([20_000, 30_000]);
    await vi.advanceTimersByTimeAsync(25_000);
    await runner.stop();
  });

  test("leaves out a job whose schedule it cannot run, and runs nothing after stop", async () => {
    const jobs: CronJobs = {
      crons: {
        named: { name: "x:y", args: [{}], schedule: { type: "cron", cron: "0 9 * * MON" } },
        ok: { name: "x:z", args: [{}], schedule: { type: "interval", seconds: 5 } },
      },
    };
    const invalid: string[] = [];
    const { runs, run } = record();
    const runner = startCronRunner(jobs, run, { onInvalid: (identifier) => invalid.push(identifier) });
    expect(invalid).toEqual(["named"]);
    expect(runner.jobs.map((job) => job.identifier)).toEqual(["ok"]);
    await vi.advanceTimersByTimeAsync(5_000);
    await runner.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runs).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("health lines", () => {
  const incident = { instanceId: "i1", status: "open", severity: "down", failing: ["site"], openedAt: 1_000 };

  test("tell an instance's first confirmed status and each change of it", () => {
    const unchecked: HealthSnapshot = { instances: { i1: undefined }, incidents: {} };
    const active: HealthSnapshot = { instances: { i1: "active" }, incidents: {} };
    const down: HealthSnapshot = { instances: { i1: "down" }, incidents: {} };
    expect(describeHealthChanges(unchecked, unchecked)).toEqual([]);
    expect(describeHealthChanges(unchecked, active)).toEqual(["health: instance i1 is active (first confirmed check)"]);
    expect(describeHealthChanges(active, down)).toEqual(["health: instance i1 active → down"]);
  });

  test("tell an incident opening, alerting and resolving, once each", () => {
    const open: HealthSnapshot = { instances: {}, incidents: { n1: incident } };
    const alerted: HealthSnapshot = { instances: {}, incidents: { n1: { ...incident, alertedAt: 61_000 } } };
    const resolved: HealthSnapshot = {
      instances: {},
      incidents: { n1: { ...incident, alertedAt: 61_000, status: "resolved", resolvedAt: 126_000 } },
    };
    expect(describeHealthChanges(EMPTY_HEALTH, open)).toEqual(["incident n1 opened: instance i1 down (failing: site)"]);
    expect(describeHealthChanges(open, alerted)).toEqual(["incident n1 alerted: instance i1 down"]);
    expect(describeHealthChanges(alerted, alerted)).toEqual([]);
    expect(describeHealthChanges(alerted, resolved)).toEqual(["incident n1 resolved after 2 min 5 s: instance i1"]);
  });
});
