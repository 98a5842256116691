// @vitest-environment node
// The operator CLI (scripts/brain.ts) as an operator runs it: `npm start` serves Brain offline
// once for the whole file, its test checkout failed by a permanent pagesProject fault, and each
// test runs the CLI as a child process against it, asserting what it prints and its exit code.
import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { duration, parseTime, table, time } from "../scripts/brain";

const TSX = "node_modules/.bin/tsx";

type Served = { url: string; token: string; sessionId: string; jobId: string; instanceId: string };
let server: ChildProcess | undefined;
let served: Served;

/** Starts `npm start` (scripts/serve.ts) on a free port and waits until it serves. */
function startServer(): Promise<Served> {
  return new Promise((resolve, reject) => {
    // CI=true would make serve exit once the checkout settles; this test needs it serving.
    const child = spawn(TSX, ["scripts/serve.ts", "--latency", "20", "--fail", "pagesProject:permanent:1"], {
      env: { ...process.env, PORT: "0", CI: "false" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // its own process group, so afterAll ends tsx and its node child together
    });
    server = child;
    let stdout = "";
    const timer = setTimeout(() => reject(new Error(`npm start did not come up:\n${stdout}`)), 90_000);
    child.stdout!.on("data", (chunk) => {
      stdout += chunk;
      if (!stdout.includes("Serving until Ctrl-C")) return;
      clearTimeout(timer);
      const match = (re: RegExp) => re.exec(stdout)?.[1] ?? reject(new Error(`no ${re} in:\n${stdout}`));
      resolve({
        url: match(/running offline on (http:\/\/127\.0\.0\.1:\d+)/) as string,
        token: match(/admin token: ([0-9a-f]+)/) as string,
        sessionId: match(/session_id=(cs_test_offline_[0-9a-f]+)/) as string,
        jobId: match(/retry-provisioning\/(\w+)/) as string,
        instanceId: match(/instance-health\/(\w+)/) as string,
      });
    });
    child.on("exit", (code) => reject(new Error(`npm start exited ${code}:\n${stdout}`)));
  });
}

type Run = { code: number | null; stdout: string; stderr: string };

/** Runs `tsx scripts/brain.ts <args>` (or another command line) with the server's URL and token. */
function brain(args: string[], env: Record<string, string | undefined> = {}, command: string[] = [TSX, "scripts/brain.ts"]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(command[0]!, [...command.slice(1), ...args], {
      env: { ...process.env, BRAIN_URL: served.url, ADMIN_API_TOKEN: served.token, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  served = await startServer();
}, 120_000);

afterAll(() => {
  if (server?.pid && server.exitCode === null) process.kill(-server.pid, "SIGTERM");
});

describe("operator CLI against npm start", () => {
  test("status prints the session's failed job, its error and each step", async () => {
    const { code, stdout } = await brain(["status", served.sessionId]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^status\s+failed\s+\d+% \(\d\/9 steps\)/m);
    expect(stdout).toContain(`job       ${served.jobId}`);
    expect(stdout).toMatch(/^error\s+pagesProject \(permanent\): /m);
    expect(stdout).toMatch(/^STEP\s+STATUS\s+ATTEMPTS\s+TOOK\s+ERROR$/m);
    expect(stdout).toMatch(/^pagesProject\s+failed\s+1\s/m);
  }, 30_000);

  test("jobs lists the failed job in a table, and --status failed --json prints the API's JSON", async () => {
    const human = await brain(["jobs"]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^JOB\s+INSTANCE\s+KIND\s+STATUS\s+STEPS\s+RETRIES\s+CREATED\s+ERROR$/m);
    expect(human.stdout).toMatch(new RegExp(`^${served.jobId}\\s+${served.instanceId}\\s+provision\\s+failed\\s+\\d/9\\s+0\\s+.*pagesProject \\(permanent\\)`, "m"));
    const machine = await brain(["jobs", "--status", "failed", "--json"]);
    expect(machine.code).toBe(0);
    expect(JSON.parse(machine.stdout)).toEqual({
      jobs: [expect.objectContaining({ jobId: served.jobId, status: "failed", error: expect.objectContaining({ step: "pagesProject", class: "permanent" }) })],
    });
  }, 30_000);

  test("dead-letter lists the failed job with its step and class", async () => {
    const { code, stdout } = await brain(["dead-letter"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^${served.jobId}\\s+${served.instanceId}\\s+provision\\s+pagesProject\\s+permanent\\s`, "m"));
  }, 30_000);

  test("retry --wait follows the job's steps to succeeded and exits 0", async () => {
    const { code, stdout, stderr } = await brain(["retry", served.jobId, "--wait", "--interval", "100"]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^Job ${served.jobId} retried \\(retry 1\\): (running|queued)$`, "m"));
    expect(stdout).toMatch(/^\[\s*\d+%\] \d\/9 pagesProject (running|retrying|succeeded) \(attempt 2\)/m);
    expect(stdout).toMatch(/^\[100%\] 9\/9 activate succeeded$/m);
    expect(stdout).toMatch(/^\[100%\] 9\/9 job succeeded$/m);
    expect(stdout).toMatch(new RegExp(`Job ${served.jobId} succeeded after `));
    const status = await brain(["status", served.sessionId, "--json"]);
    expect(JSON.parse(status.stdout)).toMatchObject({ status: "ready", jobId: served.jobId });
  }, 60_000);

  test("an API refusal prints its code and message on stderr and exits 1 (retry of a job that did not fail, cancel of a finished one)", async () => {
    const retry = await brain(["retry", served.jobId]);
    expect(retry).toMatchObject({ code: 1, stdout: "" });
    expect(retry.stderr).toMatch(/^brain: JOB_NOT_FAILED \(HTTP 409\): /);
    const cancel = await brain(["cancel", served.jobId, "--json"]);
    expect(cancel).toMatchObject({ code: 1, stdout: "" });
    expect(cancel.stderr).toMatch(/^brain: JOB_NOT_IN_PROGRESS \(HTTP 409\): /);
  }, 30_000);

  test("a bad id prints the API's NOT_FOUND and exits 1", async () => {
    const { code, stdout, stderr } = await brain(["retry", "no-such-job"]);
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr.trim()).toBe("brain: NOT_FOUND (HTTP 404): no provisioning job no-such-job");
    // --wait reads the job first (GET /admin/jobs/:jobId), so nothing is retried.
    const wait = await brain(["retry", "no-such-job", "--wait", "--json"]);
    expect(wait).toMatchObject({ code: 1, stdout: "" });
    expect(wait.stderr.trim()).toBe("brain: NOT_FOUND (HTTP 404): no job no-such-job");
  }, 30_000);

  test("a wrong token prints 401 UNAUTHORIZED and exits 1, and so does a BRAIN_URL that does not answer", async () => {
    const { code, stderr } = await brain(["jobs"], { ADMIN_API_TOKEN: "wrong-token" });
    expect(code).toBe(1);
    expect(stderr).toMatch(/^brain: UNAUTHORIZED \(HTTP 401\): admin bearer token required/);
    const unreachable = await brain(["circuits"], { BRAIN_URL: "http://127.0.0.1:1" });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^brain: UNREACHABLE: cannot reach http:\/\/127\.0\.0\.1:1: /);
  }, 30_000);

  test("bad usage prints the usage and exits 2: unknown command, missing environment, missing argument, unknown option", async () => {
    const cases: [string[], Record<string, string | undefined>, string][] = [
      [["frobnicate"], {}, 'unknown command "frobnicate"'],
      [["jobs"], { BRAIN_URL: "" }, "set BRAIN_URL in the environment"],
      [["jobs"], { ADMIN_API_TOKEN: "" }, "set ADMIN_API_TOKEN in the environment"],
      [["retry"], {}, "expected exactly one <jobId>"],
      [["jobs", "--bogus"], {}, "--bogus"],
      [[], {}, "no command given"],
    ];
    for (const [args, env, message] of cases) {
      const { code, stdout, stderr } = await brain(args, env);
      expect({ args, code }).toEqual({ args, code: 2 });
      expect(stdout).toBe("");
      expect(stderr).toContain(message);
      expect(stderr).toContain("Usage: npm run brain -- <command>");
    }
  }, 60_000);

  test("health prints the fleet table, and one instance's resources checked now", async () => {
    const fleet = await brain(["health"]);
    expect(fleet.code).toBe(0);
    expect(fleet.stdout).toMatch(/^fleet\s+active \d+, degraded \d+, down \d+, unchecked \d+$/m);
    expect(fleet.stdout).toMatch(new RegExp(`^${served.instanceId}\\s+starter\\s+\\w+`, "m"));
    const one = await brain(["health", served.instanceId]);
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/^now\s+healthy at /m);
    expect(one.stdout).toMatch(/^pagesProject\s+cloudflare\s+brain-\S+\s+yes\s/m);
    const json = await brain(["health", served.instanceId, "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ instanceId: served.instanceId, overall: "healthy" });
  }, 30_000);

  test("incidents, circuits and orphans print their tables (nothing open, every circuit closed, no orphans)", async () => {
    const incidents = await brain(["incidents", "--status", "open"]);
    expect(incidents).toMatchObject({ code: 0, stdout: "No incidents.\n" });
    const circuits = await brain(["circuits"]);
    expect(circuits.code).toBe(0);
    expect(circuits.stdout).toMatch(/^PROVIDER\s+STATE\s+FAILURES\s+OPENED$/m);
    expect(circuits.stdout).toMatch(/^cloudflare\s+closed\s+\d+/m);
    const orphans = await brain(["orphans"]);
    expect(orphans.code).toBe(0);
    expect(orphans.stdout).toContain("Scanning every provider for orphaned resources…");
    expect(orphans.stdout).toContain("No orphans.");
    const cleanup = await brain(["orphans", "--cleanup", "--dry-run", "--json"]);
    expect(cleanup.code).toBe(0);
    expect(JSON.parse(cleanup.stdout)).toEqual({ dryRun: true, deleted: [], wouldDelete: [], failed: [] });
    const badStatus = await brain(["incidents", "--status", "closed"]);
    expect(badStatus.code).toBe(1);
    expect(badStatus.stderr).toMatch(/^brain: BAD_REQUEST \(HTTP 400\): /);
  }, 60_000);

  test("deliveries lists the events forwarded to the tenant", async () => {
    const { code, stdout } = await brain(["deliveries", served.instanceId]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^DELIVERY\s+EVENT\s+TYPE\s+STATUS\s+ATTEMPTS/m);
    const json = await brain(["deliveries", served.instanceId, "--json"]);
    expect(JSON.parse(json.stdout)).toEqual({ deliveries: expect.any(Array) });
  }, 30_000);

  test("metrics prints the KPIs for a range; a range the API refuses prints its BAD_REQUEST", async () => {
    const { code, stdout, stderr } = await brain(["metrics", "--from", "24h"]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toMatch(/^range\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ → /m);
    expect(stdout).toMatch(/^jobs\s+started [1-9]\d*, succeeded [1-9]\d*, failed \d+$/m);
    expect(stdout).toMatch(/^success rate\s+\d+\.\d%$/m);
    expect(stdout).toMatch(/^STEP\s+AVG\s+P95$/m);
    const json = JSON.parse((await brain(["metrics", "--json"])).stdout);
    expect(json).toMatchObject({ jobs: { started: expect.any(Number) }, failuresByStep: expect.any(Object) });
    const refused = await brain(["metrics", "--from", "500d"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^brain: BAD_REQUEST \(HTTP 400\): /);
    const bad = await brain(["metrics", "--from", "yesterday-ish"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--from must be epoch milliseconds");
  }, 30_000);

  test("a path the deployment does not serve prints the router's plain 404 cleanly and exits 1", async () => {
    const { code, stdout, stderr } = await brain(["circuits"], { BRAIN_URL: `${served.url}/nowhere` });
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr.trim()).toBe("brain: HTTP_404: No HttpAction routed for /nowhere/admin/circuits");
  }, 30_000);

  test("npm run brain -- <command> runs the same CLI", async () => {
    const { code, stdout } = await brain(["jobs", "--status", "succeeded"], {}, ["npm", "run", "--silent", "brain", "--"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^${served.jobId}\\s+${served.instanceId}\\s+provision\\s+succeeded\\s+9/9\\s+1\\s`, "m"));
  }, 30_000);
});

describe("CLI formatting", () => {
  test("aligns table columns two spaces apart and shows a missing cell as -", () => {
    expect(table(["A", "LONGER"], [["xyz", 1], [undefined, "z"]])).toEqual(["A    LONGER", "xyz  1", "-    z"]);
  });

  test("prints times in UTC and durations in the largest sensible unit", () => {
    expect(time(Date.UTC(2026, 0, 5, 10, 0, 30))).toBe("2026-01-05 10:00:30Z");
    expect(time(undefined)).toBe("-");
    expect([850, 2_300, 245_000, 3 * 3_600_000 + 120_000].map(duration)).toEqual(["850 ms", "2.3 s", "4 min 5 s", "3 h 2 min"]);
  });

  test("reads --from/--to as epoch ms, an ISO date or a time ago", () => {
    const now = Date.UTC(2026, 0, 5);
    expect(parseTime("from", "1700000000000", now)).toBe(1_700_000_000_000);
    expect(parseTime("from", "2026-01-04T00:00:00Z", now)).toBe(Date.UTC(2026, 0, 4));
    expect(parseTime("from", "24h", now)).toBe(now - 86_400_000);
    expect(parseTime("from", "30m", now)).toBe(now - 1_800_000);
    expect(() => parseTime("from", "soon", now)).toThrow("--from must be");
  });
});
