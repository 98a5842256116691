// Regenerates bench/workflow/convex/_generated offline, like scripts/codegen-offline.mjs does
// for Brain: the CLI's local-only code path, then the `components` typings.
// Run from the repository root: node bench/workflow/codegen.mjs
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const COMPONENTS = { workflow: "@convex-dev/workflow" }; // name in app.use -> npm package

execFileSync("npx", ["convex", "codegen", "--system-udfs", "--typecheck", "disable"], { stdio: "inherit", cwd: root });

const js = join(root, "convex/_generated/api.js");
const src = readFileSync(js, "utf8").replace('import { anyApi } from "convex/server";', 'import { anyApi, componentsGeneric } from "convex/server";');
writeFileSync(js, src.trimEnd() + "\nexport const components = componentsGeneric();\n");

const dts = join(root, "convex/_generated/api.d.ts");
writeFileSync(
  dts,
  readFileSync(dts, "utf8") +
    "\nexport declare const components: {\n" +
    Object.entries(COMPONENTS)
      .map(([name, pkg]) => `  "${name}": import("${pkg}/_generated/component.js").ComponentApi<"${name}">;`)
      .join("\n") +
    "\n};\n",
);
