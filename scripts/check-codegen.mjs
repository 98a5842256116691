// Fails when the committed convex/_generated differs from what `npm run codegen` produces.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const dir = "convex/_generated";
const snapshot = () => Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), "utf8")]));
const before = snapshot();
execFileSync("node", ["scripts/codegen-offline.mjs"], { stdio: ["ignore", "ignore", "inherit"] });
const after = snapshot();
const changed = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((f) => before[f] !== after[f]);
if (changed.length > 0) {
  console.error(`check:codegen: convex/_generated was stale (${changed.join(", ")}); regenerated it - review and commit`);
  process.exit(1);
}
console.log("check:codegen: ok - convex/_generated matches the code");
