// Runs the chaos benchmark (scripts/bench/chaos.run.ts) under vitest, for its fake timers:
// simulated provider latency and retry delays cost no wall time.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "edge-runtime",
    server: { deps: { inline: ["convex-test"] } },
    include: ["scripts/bench/chaos.run.ts"],
    testTimeout: 60 * 60_000,
    onConsoleLog: () => false,
  },
});
