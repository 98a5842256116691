// The tenant deploy workflow's reports (.github/workflows/provision_backend.yml): its reporter
// script, taken from the workflow file as it stands, run with node against Brain (live mode, the
// local fakes; the GitHub fake dispatches but never calls back, so deployApp waits). Progress
// reports per workflow step are signed and stored on the job; the final report's timings are
// stored; the script exits non-zero whenever Brain refuses a report, failing the workflow.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, expect, test } from "vitest";
import type { Doc, Id } from "../convex/_generated/dataModel";
import { FAKE_CREDENTIALS, startFakes, type Fakes } from "./fakes";
import { pollUntilSettled, sendCheckout, setupBackend, type TestBackend } from "./harness";

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The reporter script exactly as the workflow writes it (between its BEGIN and END lines). */
function reporterScript(): string {
  const workflow = readFileSync(new URL("../.github/workflows/provision_backend.yml", import.meta.url), "utf8");
  const lines = workflow.split("\n");
  const begin = lines.findIndex((l) => l.includes("// BEGIN brain-report.mjs"));
  const end = lines.findIndex((l) => l.includes("// END brain-report.mjs"));
  expect(begin).toBeGreaterThan(0);
  expect(end).toBeGreaterThan(begin);
  const indent = lines[begin].length - lines[begin].trimStart().length;
  const path = join(mkdtempSync(join(tmpdir(), "brain-report-")), "brain-report.mjs");
  writeFileSync(path, lines.slice(begin, end + 1).map((l) => l.slice(indent)).join("\n"));
  return path;
}

let fakes: Fakes;
beforeEach(async () => {
  fakes = await startFakes();
});
afterEach(async () => {
  await fakes.close();
});

async function waitingDeploy(t: TestBackend) {
  const { sessionId } = await sendCheckout(t);
  for (const until = Date.now() + 20_000; ; await sleep(50)) {
    const [dispatch] = fakes.github.dispatches();
    if (dispatch) {
      const job = await t.run((ctx) => ctx.db.get("provisioningJobs", dispatch.inputs.job_id as Id<"provisioningJobs">));
      if (job?.steps.find((s) => s.name === "deployApp")?.status === "waiting") return { sessionId, dispatch };
    }
    if (Date.now() > until) throw new Error("deployApp never waited for its run");
  }
}

test("the workflow's signed progress reports and final timings are stored on the job, and every refusal fails the reporter", async () => {
  fakes.github.setCallbackMode("silent");
  const t = setupBackend({ env: { ...fakes.env, RETRY_BASE_DELAY_MS: "20", RETRY_MAX_DELAY_MS: "200" } });
  fakes.attach(t);
  const script = reporterScript();
  const { sessionId, dispatch } = await waitingDeploy(t);
  const jobId = dispatch.inputs.job_id as Id<"provisioningJobs">;
  const env = {
    PATH: process.env.PATH ?? "",
    CALLBACK_URL: dispatch.inputs.callback_url,
    JOB_ID: dispatch.inputs.job_id,
    STEP: dispatch.inputs.step,
    DISPATCH_ID: dispatch.inputs.dispatch_id,
    RUN_ID: String(dispatch.runId),
    SECRET: FAKE_CREDENTIALS.callbackSecret,
  };
  const report = (args: string[], overrides: Record<string, string> = {}) =>
    run("node", [script, ...args], { env: { ...env, ...overrides } }).then(
      ({ stdout }) => ({ code: 0, out: stdout }),
      (error: { code?: number; stdout?: string }) => ({ code: error.code ?? -1, out: error.stdout ?? "" }),
    );
  const job = () => t.run((ctx) => ctx.db.get("provisioningJobs", jobId)) as Promise<Doc<"provisioningJobs">>;

  expect(await report(["progress", "backend", "started"])).toMatchObject({ code: 0, out: expect.stringContaining("Brain answered 200") });
  expect(await report(["progress", "backend", "succeeded", "41250"])).toMatchObject({ code: 0 });
  expect((await job()).deployProgress).toEqual([
    { name: "backend", state: "started", at: expect.any(Number) },
    { name: "backend", state: "succeeded", at: expect.any(Number), ms: 41250 },
  ]);

  // Refused: another dispatch's report, a wrong secret, a malformed state. Nothing is stored.
  expect(await report(["progress", "site", "started"], { DISPATCH_ID: `${jobId}-99` })).toMatchObject({ code: 1, out: expect.stringContaining("409") });
  expect(await report(["progress", "site", "started"], { SECRET: "not-the-callback-secret" })).toMatchObject({ code: 1, out: expect.stringContaining("401") });
  expect(await report(["progress", "site", "finished"])).toMatchObject({ code: 1, out: expect.stringContaining("400") });
  expect((await job()).deployProgress).toHaveLength(2);

  expect(await report(["final", "success"], { BACKEND_MS: "41250", SITE_MS: "18000" })).toMatchObject({ code: 0 });
  expect((await pollUntilSettled(t, sessionId)).status).toBe("ready");
  expect((await job()).deployTimings).toEqual({ backendMs: 41250, siteMs: 18000 });

  // The step no longer waits: a late report is refused, and the workflow run fails with it.
  expect(await report(["progress", "site", "succeeded", "5"])).toMatchObject({ code: 1, out: expect.stringContaining("409") });
  expect(await report(["final", "success"])).toMatchObject({ code: 1 });
}, 60_000);
