// `npm run rotate-encryption-key`: re-encrypts every stored secret under the current (first) key
// of ENCRYPTION_KEYS, online. It asks Brain over HTTP (BRAIN_URL, bearer ADMIN_API_TOKEN) to start
// or continue the rotation (POST /admin/encryption/rotate), then follows it (GET, every
// --interval seconds) until it is done or failed, printing its progress. The rotation itself runs
// inside Convex in bounded, resumable pages: stopping this script stops nothing, and running it
// again continues (or, once done, re-checks and re-encrypts nothing).
// The last line on stdout is one JSON object: { "keyId", "status", "scanned", "reencrypted" } (and
// "error" when it failed). Exit codes: 0 done, 1 failed, timed out or an API error, 2 bad usage.
// Procedure: docs/runbook.md "Rotating the encryption key".
import { parseArgs } from "node:util";

export const USAGE = `Usage: npm run rotate-encryption-key -- [--interval SEC] [--timeout SEC]

Re-encrypts every stored secret under the first key of ENCRYPTION_KEYS (set it on the deployment
first, with the old key still listed), then reports when the old key can be dropped.

Options:
  --interval SEC  seconds between progress checks (default 2)
  --timeout SEC   give up waiting after this long (default 3600); the rotation itself goes on

Environment:
  BRAIN_URL        Brain's HTTP base, e.g. https://<deployment>.convex.site
  ADMIN_API_TOKEN  the admin bearer token
`;

type Rotation = { keyId: string; status: "running" | "done" | "failed"; table: string; scanned: number; reencrypted: number; error?: string };
type Status = { currentKeyId: string; keyIds: string[]; rotation: Rotation | null };

export type RotateDeps = {
  fetch: (url: string, init: RequestInit) => Promise<Response>;
  sleep: (ms: number) => Promise<void>;
  out: (line: string) => void;
  err: (line: string) => void;
  now: () => number;
};

async function call<T>(deps: RotateDeps, base: string, token: string, method: "GET" | "POST", path: string): Promise<T> {
  let response: Response;
  try {
    response = await deps.fetch(`${base.replace(/\/$/, "")}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  } catch (error) {
    throw new Error(`no answer from ${base}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const body = (await response.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
  if (!response.ok) {
    throw new Error(`${response.status} ${body?.error?.code ?? "ERROR"}: ${body?.error?.message ?? "no message"}`);
  }
  return body as T;
}

const summary = (r: Rotation) =>
  JSON.stringify({ keyId: r.keyId, status: r.status, scanned: r.scanned, reencrypted: r.reencrypted, ...(r.error ? { error: r.error } : {}) });

export async function main(argv: string[], env: Record<string, string | undefined>, deps: RotateDeps): Promise<number> {
  let values: { interval?: string; timeout?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ args: argv, options: { interval: { type: "string" }, timeout: { type: "string" }, help: { type: "boolean" } } }));
  } catch (error) {
    deps.err(`rotate-encryption-key: ${error instanceof Error ? error.message : String(error)}`);
    deps.err(USAGE);
    return 2;
  }
  if (values.help) {
    deps.out(USAGE);
    return 0;
  }
  const interval = Number(values.interval ?? "2");
  const timeout = Number(values.timeout ?? "3600");
  if (!(interval > 0) || !(timeout > 0)) {
    deps.err("rotate-encryption-key: --interval and --timeout take a positive number of seconds");
    return 2;
  }
  const base = env.BRAIN_URL;
  const token = env.ADMIN_API_TOKEN;
  if (!base || !token) {
    deps.err("rotate-encryption-key: set BRAIN_URL and ADMIN_API_TOKEN");
    return 2;
  }
  try {
    const { rotation: started } = await call<{ rotation: Rotation }>(deps, base, token, "POST", "/admin/encryption/rotate");
    deps.out(`rotating secrets to encryption key "${started.keyId}" (${started.status})`);
    const deadline = deps.now() + timeout * 1000;
    let last = "";
    for (;;) {
      const status = await call<Status>(deps, base, token, "GET", "/admin/encryption/rotate");
      const rotation = status.rotation;
      if (!rotation) throw new Error("the rotation was not found");
      const progress = `${rotation.table}: ${rotation.scanned} rows scanned, ${rotation.reencrypted} secrets re-encrypted`;
      if (progress !== last && rotation.status === "running") deps.out(progress);
      last = progress;
      if (rotation.status === "done") {
        const others = status.keyIds.filter((id) => id !== rotation.keyId);
        deps.out(
          others.length > 0
            ? `done: every secret is under "${rotation.keyId}"; ${others.map((id) => `"${id}"`).join(", ")} can be dropped from ENCRYPTION_KEYS`
            : `done: every secret is under "${rotation.keyId}"`,
        );
        deps.out(summary(rotation));
        return 0;
      }
      if (rotation.status === "failed") {
        deps.err(`failed: ${rotation.error ?? "no reason given"}; fix it, then run this again to continue`);
        deps.out(summary(rotation));
        return 1;
      }
      if (deps.now() >= deadline) {
        deps.err(`still running after ${timeout} s; it goes on in Brain: run this again to follow it`);
        deps.out(summary(rotation));
        return 1;
      }
      await deps.sleep(interval * 1000);
    }
  } catch (error) {
    deps.err(`rotate-encryption-key: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

// Run when executed (tsx scripts/rotate-encryption-key.ts), not when imported by a test.
if (process.argv[1] && /rotate-encryption-key\.ts$/.test(process.argv[1])) {
  main(process.argv.slice(2), process.env, {
    fetch: (url, init) => fetch(url, init),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    now: () => Date.now(),
  }).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`rotate-encryption-key: unexpected error: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
