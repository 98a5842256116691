// Offline deploy check: runs Convex's real bundler over convex/ exactly as
// `npx convex deploy` would, without a server (--debug-bundle-path stops before the push).
// Code that cannot deploy (a Node-only import outside "use node", say) fails here.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const out = mkdtempSync(join(tmpdir(), "brain-bundle-"));
const env = {
  ...process.env,
  // The bundler needs a deployment target to be named; nothing is contacted.
  CONVEX_SELF_HOSTED_URL: "http://127.0.0.1:3999",
  CONVEX_SELF_HOSTED_ADMIN_KEY: "offline-bundle-check",
};
delete env.CONVEX_DEPLOYMENT;
delete env.CONVEX_DEPLOY_KEY;

// The bundler rewrites convex/_generated/api.js; keep the committed copy intact.
const apiJs = "convex/_generated/api.js";
const before = readFileSync(apiJs, "utf8");
const started = Date.now();
const result = spawnSync("npx", ["convex", "deploy", "--debug-bundle-path", join(out, "bundle"), "-y"], {
  env,
  encoding: "utf8",
});
const after = readFileSync(apiJs, "utf8");
rmSync(out, { recursive: true, force: true });

const output = `${result.stdout}\n${result.stderr}`;
if (result.status !== 0 || !output.includes("Wrote bundle")) {
  process.stderr.write(output);
  console.error("check:bundle: FAILED - convex/ would not deploy (see the bundler output above)");
  process.exit(1);
}
if (after !== before) {
  console.error("check:bundle: the bundler rewrote convex/_generated/api.js; run `npm run codegen` and commit");
  process.exit(1);
}
console.log(`check:bundle: ok - convex/ bundles for deployment (${Date.now() - started} ms)`);
