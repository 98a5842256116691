// Runs the health benchmark (scripts/bench/health.run.ts) under vitest, for its fake timers, with
// convex-test instrumented (scripts/bench/instrument.mts) so the meter sees every function call,
// read and write.
import { defineConfig } from "vitest/config";
import { instrumentConvexTest } from "./instrument.mts";

export default defineConfig({
  plugins: [instrumentConvexTest()],
  test: {
    environment: "edge-runtime",
    server: { deps: { inline: ["convex-test"] } },
    include: ["scripts/bench/health.run.ts"],
    testTimeout: 4 * 60 * 60_000,
    onConsoleLog: () => false,
  },
});
