// @vitest-environment node
// The README's first command, as a new user runs it: `npm start` serves Brain offline,
// provisions a signed test checkout and (with --once) exits 0 once it is ready.
import { spawn } from "node:child_process";
import { describe, expect, test } from "vitest";

function runServe(args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn("npx", ["tsx", "scripts/serve.ts", ...args], {
      env: { ...process.env, PORT: "0", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("npm start (offline embedded backend)", () => {
  test("serves the routes, provisions its signed test checkout to ready and exits 0 with --once", async () => {
    const { code, stdout } = await runServe(["--once", "--latency", "20"]);
    expect(stdout).toMatch(/Brain is running offline on http:\/\/127\.0\.0\.1:\d+/);
    expect(stdout).toMatch(/admin token: [0-9a-f]{48}/);
    expect(stdout).toMatch(/status page: http:\/\/127\.0\.0\.1:\d+\/status\?session_id=cs_test_/);
    expect(stdout).toMatch(/\[100%\] 9\/9 ready {2}https:\/\/brain-[a-z0-9-]+\.pages\.dev/);
    expect(stdout).toContain("Ready in");
    expect(code).toBe(0);
  }, 120_000);

  test("exits non-zero when the test checkout fails", async () => {
    const { code, stdout } = await runServe(["--once", "--latency", "20", "--fail", "pagesProject:permanent:1"]);
    expect(stdout).toContain("injected fault: pagesProject fails 1x (permanent)");
    expect(stdout).toMatch(/Provisioning failed after .* pagesProject \(permanent\)/);
    expect(code).toBe(1);
  }, 120_000);

  test("rejects a malformed --fail option with a clear message", async () => {
    const { code, stderr } = await runServe(["--once", "--fail", "nonsense"]);
    expect(stderr).toContain("--fail expects");
    expect(code).toBe(1);
  }, 120_000);
});
