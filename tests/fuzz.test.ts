// @vitest-environment node
// The fuzzer in CI size (docs/security.md#fuzzing): `npm run fuzz` with 300 inputs and a fixed seed
// against its own offline server. No bad input may answer 5xx, change a document, or echo a secret or
// a stack trace; and none may be accepted (2xx) where it should have been refused.
import { spawn } from "node:child_process";
import { describe, expect, test } from "vitest";

function runFuzz(args: string[]) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn("npx", ["tsx", "scripts/fuzz.ts", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("npm run fuzz", () => {
  test("300 bad inputs (seed 11): no 5xx, no writes, no leaks, none accepted; the last line is the JSON summary", async () => {
    const { code, stdout, stderr } = await runFuzz(["--inputs", "300", "--seed", "11"]);
    const lines = stdout.trim().split("\n");
    expect(lines[0]).toContain("seed 11");
    const result = JSON.parse(lines.at(-1)!) as { inputs: number; byStatus: Record<string, number>; server5xx: number; writes: number; leaks: number };
    expect(Object.keys(result)).toEqual(["inputs", "byStatus", "server5xx", "writes", "leaks"]);
    const findings = lines.filter((line) => line.startsWith("finding:"));
    expect(findings, `${findings.join("\n")}\n${stderr}`).toEqual([]);
    expect(result).toMatchObject({ inputs: 300, server5xx: 0, writes: 0, leaks: 0 });
    expect(Object.values(result.byStatus).reduce((sum, n) => sum + n, 0)).toBe(300);
    expect(JSON.parse(lines.at(-2)!)).toMatchObject({ seed: 11, accepted: 0 });
    expect(code).toBe(0);
  }, 120_000);

  test("the same seed sends the same inputs", async () => {
    const first = await runFuzz(["--inputs", "40", "--seed", "5", "--verbose"]);
    const second = await runFuzz(["--inputs", "40", "--seed", "5", "--verbose"]);
    const inputs = (out: string) => out.split("\n").filter((line) => line.startsWith("#")).map((line) => line.replace(/ → .*/, ""));
    expect(inputs(first.stdout)).toHaveLength(40);
    expect(inputs(second.stdout)).toEqual(inputs(first.stdout));
  }, 120_000);
});
