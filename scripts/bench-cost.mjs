// `npm run bench:cost -- --checkouts 100 --fault-rate 0` (those are the defaults).
// Runs scripts/bench/cost.run.ts under vitest (fake timers, convex-test instrumented by
// scripts/bench/vitest.cost.config.mts): the same checkouts provisioned on Brain's engine and on
// @convex-dev/workflow. Prints a table, the per-function breakdown of Brain's cost, and as the
// last line one JSON object. Exits non-zero unless both runs made every instance ready.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    checkouts: { type: "string", default: "100" },
    "fault-rate": { type: "string", default: "0" },
    seed: { type: "string", default: "1" },
    top: { type: "string", default: "12" },
  },
});
const checkouts = Number(values.checkouts);
const faultRate = Number(values["fault-rate"]);
const seed = Number(values.seed);
const top = Number(values.top);
if (!Number.isInteger(checkouts) || checkouts < 1) throw new Error("--checkouts must be a positive integer");
if (!(faultRate >= 0 && faultRate <= 1)) throw new Error("--fault-rate must be between 0 and 1");
if (!Number.isInteger(seed)) throw new Error("--seed must be an integer");

const dir = mkdtempSync(join(tmpdir(), "brain-bench-cost-"));
const resultFile = join(dir, "result.json");
console.log(`bench:cost: ${checkouts} checkouts, fault rate ${faultRate}, seed ${seed}: Brain's engine vs @convex-dev/workflow (sandbox providers, simulated clock)`);
const started = Date.now();
const run = spawnSync("npx", ["vitest", "run", "--config", "scripts/bench/vitest.cost.config.mts", "--reporter", "dot"], {
  env: {
    ...process.env,
    BENCH_CHECKOUTS: String(checkouts),
    BENCH_FAULT_RATE: String(faultRate),
    BENCH_SEED: String(seed),
    BENCH_RESULT_FILE: resultFile,
  },
  encoding: "utf8",
  maxBuffer: 256 * 1024 * 1024,
});
let output;
try {
  output = JSON.parse(readFileSync(resultFile, "utf8"));
} catch {
  process.stderr.write(`${run.stdout}\n${run.stderr}\n`);
  console.error("bench:cost: the run produced no result");
  process.exit(1);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const { result, detail } = output;

const pad = (text, width) => String(text).padStart(width);
const row = (cells) => `  ${cells[0].padEnd(26)}${cells.slice(1).map((c) => pad(c, 12)).join("")}`;
console.log("");
console.log(row(["per instance", "brain", "workflow", "ratio"]));
console.log(row(["function calls", result.brain.functionCallsPerInstance, result.workflow.functionCallsPerInstance, result.ratio.functionCalls]));
console.log(row(["documents read", result.brain.readsPerInstance, result.workflow.readsPerInstance, result.ratio.reads]));
console.log(row(["documents written", result.brain.writesPerInstance, result.workflow.writesPerInstance, result.ratio.writes]));
console.log(row(["p50 ms (simulated)", result.brain.p50Ms, result.workflow.p50Ms, (result.brain.p50Ms / result.workflow.p50Ms).toFixed(3)]));
console.log(row(["p95 ms (simulated)", detail.brain.p95Ms, detail.workflow.p95Ms, ""]));
console.log(row(["nested calls (not counted)", detail.brain.nestedCallsPerInstance, detail.workflow.nestedCallsPerInstance, ""]));
console.log(row(["ready", `${detail.brain.ready}/${checkouts}`, `${detail.workflow.ready}/${checkouts}`, ""]));
for (const name of ["brain", "workflow"]) {
  const d = detail[name];
  const left = d.excludedPerInstance;
  console.log(`  ${name}: left out as sandbox bookkeeping ${left.functionCalls} calls, ${left.reads} reads, ${left.writes} writes per instance; all settled after ${(d.settledMs / 1000).toFixed(1)} simulated s, measured for ${(d.simulatedMs / 1000).toFixed(1)} simulated s in ${(d.wallMs / 1000).toFixed(1)} s wall`);
}
const list = (title, tally) => {
  console.log(`  ${title}:`);
  for (const [key, n] of Object.entries(tally).slice(0, top)) console.log(`    ${pad(n.toFixed(2), 8)}  ${key}`);
};
for (const name of ["brain", "workflow"]) {
  console.log(`\n${name}, per instance, largest first:`);
  list("function calls by function", detail[name].callsByFunction);
  list("writes by top-level function", detail[name].writesByFunction);
  list("writes by table", detail[name].writesByTable);
  list("reads by top-level function", detail[name].readsByFunction);
  list("reads by table", detail[name].readsByTable);
}
const ok = detail.brain.ready === checkouts && detail.workflow.ready === checkouts;
// The target. "p50 within 5%" is read as: Brain no more than 5% slower than the workflow.
const target = result.ratio.functionCalls <= 0.5 && result.ratio.writes <= 0.5 && result.brain.p50Ms <= 1.05 * result.workflow.p50Ms;
console.log(`\n  ${ok ? "PASS" : "FAIL"}: ready ${detail.brain.ready}/${checkouts} (brain), ${detail.workflow.ready}/${checkouts} (workflow); target (calls and writes ratio <= 0.5, Brain's p50 at most 5% above the workflow's) ${target ? "met" : "not met"}; ${((Date.now() - started) / 1000).toFixed(1)} s wall`);
console.log(JSON.stringify(result));
process.exit(ok ? 0 : 1);
