import { defineConfig } from "vitest/config";
import { instrumentConvexTest } from "./scripts/bench/instrument.mts";

export default defineConfig({
  // Inert unless a test installs a CostMeter (tests/healthScale.test.ts).
  plugins: [instrumentConvexTest()],
  test: {
    environment: "edge-runtime",
    server: { deps: { inline: ["convex-test"] } },
    include: ["tests/**/*.test.ts"],
    testTimeout: 60_000,
    // convex-test marks scheduled functions in progress before it takes its
    // transaction lock, so workpool's monitor sees a state real Convex never
    // shows and logs a harmless restart; every run still completes.
    // Brain's own structured log lines are hidden too (BRAIN_TEST_LOGS=1 shows them).
    onConsoleLog: (log) => {
      if (log.includes('[monitor] "main" loop is not running')) return false;
      if (log.startsWith('{"level":') && !process.env.BRAIN_TEST_LOGS) return false;
      return undefined;
    },
  },
});
