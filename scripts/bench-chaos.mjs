// `npm run bench:chaos -- --checkouts 1000 --fault-rate 0.2 --seed 1` (those are the defaults).
// Runs scripts/bench/chaos.run.ts under vitest (for its fake timers) and prints, as the last
// line, one JSON object with the figures. Exits non-zero unless every checkout is ready and
// nothing is stuck, leaked or duplicated.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    checkouts: { type: "string", default: "1000" },
    "fault-rate": { type: "string", default: "0.2" },
    seed: { type: "string", default: "1" },
  },
});
const checkouts = Number(values.checkouts);
const faultRate = Number(values["fault-rate"]);
const seed = Number(values.seed);
if (!Number.isInteger(checkouts) || checkouts < 1) throw new Error("--checkouts must be a positive integer");
if (!(faultRate >= 0 && faultRate <= 1)) throw new Error("--fault-rate must be between 0 and 1");
if (!Number.isInteger(seed)) throw new Error("--seed must be an integer");

const dir = mkdtempSync(join(tmpdir(), "brain-bench-chaos-"));
const resultFile = join(dir, "result.json");
console.log(`bench:chaos: ${checkouts} checkouts, fault rate ${faultRate}, seed ${seed} (sandbox providers, simulated clock)`);
const started = Date.now();
const run = spawnSync("npx", ["vitest", "run", "--config", "scripts/bench/vitest.chaos.config.mts", "--reporter", "dot"], {
  env: {
    ...process.env,
    BENCH_CHECKOUTS: String(checkouts),
    BENCH_FAULT_RATE: String(faultRate),
    BENCH_SEED: String(seed),
    BENCH_RESULT_FILE: resultFile,
  },
  encoding: "utf8",
});
let output;
try {
  output = JSON.parse(readFileSync(resultFile, "utf8"));
} catch {
  process.stderr.write(`${run.stdout}\n${run.stderr}\n`);
  console.error("bench:chaos: the run produced no result");
  process.exit(1);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const { result } = output;
if (output.stuckJobs?.length) console.log(`  stuck jobs (first 3): ${JSON.stringify(output.stuckJobs)}`);
const ok = result.ready === result.checkouts && result.stuck === 0 && result.leaked === 0 && result.duplicated === 0;
console.log(
  `  ${output.faultedJobs} of ${result.checkouts} jobs met at least one fault; the watchdog re-dispatched ${output.watchdogRescues} step attempts that never ran; ${(output.simulatedMs / 60_000).toFixed(1)} simulated minutes in ${((Date.now() - started) / 1000).toFixed(1)} s of wall time`,
);
console.log(`  ${ok ? "PASS" : "FAIL"}: ready ${result.ready}/${result.checkouts}, stuck ${result.stuck}, leaked ${result.leaked}, duplicated ${result.duplicated}`);
console.log(JSON.stringify(result));
process.exit(ok ? 0 : 1);
