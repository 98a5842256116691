// Regenerates convex/_generated offline (no deployment needed), as described in
// ../shared/reference/CONVEX-OFFLINE.md: the CLI's local-only code path, then the
// `components` typings that only the online codegen would add.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";

// name in app.use (convex/convex.config.ts) -> npm package
export const COMPONENTS = {
  convexPool: "@convex-dev/workpool",
  workosPool: "@convex-dev/workpool",
  cloudflarePool: "@convex-dev/workpool",
  stripePool: "@convex-dev/workpool",
  githubPool: "@convex-dev/workpool",
  resendPool: "@convex-dev/workpool",
  brainPool: "@convex-dev/workpool",
  healthPool: "@convex-dev/workpool",
  rateLimiter: "@convex-dev/rate-limiter",
  healthCounts: "@convex-dev/aggregate",
};

execFileSync("npx", ["convex", "codegen", "--system-udfs", "--typecheck", "disable"], { stdio: "inherit" });

const js = "convex/_generated/api.js";
const src = readFileSync(js, "utf8").replace(
  'import { anyApi } from "convex/server";',
  'import { anyApi, componentsGeneric } from "convex/server";',
);
// Same bytes as the bundler writes when it adds the export itself.
writeFileSync(js, src.trimEnd() + "\nexport const components = componentsGeneric();\n");

const dts = "convex/_generated/api.d.ts";
writeFileSync(
  dts,
  readFileSync(dts, "utf8") +
    "\nexport declare const components: {\n" +
    Object.entries(COMPONENTS)
      .map(([name, pkg]) => `  "${name}": import("${pkg}/_generated/component.js").ComponentApi<"${name}">;`)
      .join("\n") +
    "\n};\n",
);
