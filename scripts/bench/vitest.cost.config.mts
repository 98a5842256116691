// Runs the cost benchmark (scripts/bench/cost.run.ts) under vitest, for its fake timers, with
// convex-test instrumented: a small transform adds hooks to convex-test's own code (inlined by
// vitest, so the transform applies) that report each transaction's function and each document
// read or written, with its table. The hooks call globalThis.__convexTestBench (see
// scripts/bench/cost.meter.ts); when nothing is installed there they do nothing.
import { defineConfig } from "vitest/config";
import { instrumentConvexTest } from "./instrument.mts";

export default defineConfig({
  plugins: [instrumentConvexTest()],
  test: {
    environment: "edge-runtime",
    server: { deps: { inline: ["convex-test"] } },
    include: ["scripts/bench/cost.run.ts"],
    testTimeout: 60 * 60_000,
    onConsoleLog: () => false,
  },
});
