// `npm run bench:health -- --instances 10000` (default 1000; --outages 20, --seed 1).
// Runs scripts/bench/health.run.ts under vitest (fake timers, convex-test instrumented by
// scripts/bench/vitest.health.config.mts): a fleet of live instances on the sandbox providers,
// the health cron on a simulated clock. Prints what it measured and, as the last line, one JSON
// object: instances, roundMs, intervalMs, the function calls, reads and writes per instance in
// one interval, each provider's API requests in the busiest interval against its budget, and the
// mean time to detect (down, alert). Exits non-zero when the run fails.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    instances: { type: "string", default: "1000" },
    outages: { type: "string", default: "20" },
    seed: { type: "string", default: "1" },
  },
});
const instances = Number(values.instances);
const outages = Number(values.outages);
const seed = Number(values.seed);
if (!Number.isInteger(instances) || instances < 1) throw new Error("--instances must be a positive integer");
if (!Number.isInteger(outages) || outages < 1 || outages > instances) throw new Error("--outages must be an integer from 1 to --instances");
if (!Number.isInteger(seed)) throw new Error("--seed must be an integer");

const dir = mkdtempSync(join(tmpdir(), "brain-bench-health-"));
const resultFile = join(dir, "result.json");
console.log(`bench:health: ${instances} instances, ${outages} outages at random moments (seed ${seed}); sandbox providers, simulated clock`);
const started = Date.now();
const run = spawnSync("npx", ["vitest", "run", "--config", "scripts/bench/vitest.health.config.mts", "--reporter", "dot"], {
  env: { ...process.env, BENCH_INSTANCES: String(instances), BENCH_OUTAGES: String(outages), BENCH_SEED: String(seed), BENCH_RESULT_FILE: resultFile },
  encoding: "utf8",
  maxBuffer: 256 * 1024 * 1024,
});
let output;
try {
  output = JSON.parse(readFileSync(resultFile, "utf8"));
} catch {
  process.stderr.write(`${run.stdout}\n${run.stderr}\n`);
  console.error("bench:health: the run produced no result");
  process.exit(1);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const { result, detail } = output;
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
console.log("");
console.log(`  cold round (all ${result.instances} due at once): ${seconds(result.roundMs)} simulated, interval ${seconds(result.intervalMs)}`);
console.log(`  one steady interval: ${detail.checkedOnce}/${result.instances} checked exactly once`);
console.log(`  per instance per interval: ${result.functionCallsPerInstance} function calls, ${result.readsPerInstance} reads, ${result.writesPerInstance} writes`);
for (const [key, n] of Object.entries(detail.callsByFunction).sort((a, b) => b[1] - a[1])) console.log(`    ${n.toFixed(4).padStart(8)}  ${key}`);
console.log(`  provider API requests in the interval holding the deep sweep (budget = RATE_LIMIT_*_RPS x interval):`);
for (const [provider, { requests, budget }] of Object.entries(result.providerRequests)) {
  console.log(`    ${provider.padEnd(11)} ${String(requests).padStart(6)} of ${budget}`);
}
if (detail.deepSweep) {
  const sweep = detail.deepSweep;
  console.log(`  deep sweep: ${sweep.organizations} organizations, ${sweep.pagesProjects} Pages projects listed in ${seconds(sweep.finishedAt - sweep.startedAt)} simulated; ${sweep.suspects} suspects`);
}
const spread = (key) => {
  const values = detail.detections.map((d) => d[key]).sort((a, b) => a - b);
  return `min ${seconds(values[0])}, max ${seconds(values.at(-1))}`;
};
console.log(`  mean time to detect over ${detail.outages} outages: down ${seconds(result.mttdMs.down)} (${spread("downMs")}), alert ${seconds(result.mttdMs.alert)} (${spread("alertMs")})`);
console.log(`  wall time: ${seconds(Date.now() - started)} (rerun: npm run bench:health -- --instances ${instances} --outages ${outages} --seed ${seed})`);
console.log(JSON.stringify(result));
