// The audit trail: append-only (a source scan finds every write to auditLogs), and complete
// for the changes the issue names: webhook receipts and outcomes, circuit changes, fault injection.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import { circuitChange } from "../convex/model/circuits";
import { checkoutEvent, drain, sendCheckout, sendEvent, setupBackend, statusOf, type TestBackend } from "./harness";

const ROOT = join(__dirname, "..");
const CONVEX = join(ROOT, "convex");

/** The one append helper, and the retention pass: the only files allowed to write auditLogs, each only its way. */
const ALLOWED: Record<string, "insert" | "delete"> = {
  "convex/model/audit.ts": "insert",
  "convex/retention.ts": "delete",
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (name === "_generated" || name === "node_modules") return [];
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|js|mjs|cjs)$/.test(name) ? [path] : [];
  });
}

export type AuditWrite = { file: string; line: number; op: string; text: string };

/**
 * Writes to auditLogs in one file's source: db.insert/patch/replace/delete naming "auditLogs",
 * and any patch/replace/delete of an id that reads as an audit row's (`audit…`), and any of them
 * through a table that is not a string literal (a variable could name auditLogs).
 */
export function auditWrites(file: string, source: string): AuditWrite[] {
  const found: AuditWrite[] = [];
  const call = /\.db\s*\.\s*(insert|patch|replace|delete)\s*\(([^;]*)/g;
  for (const match of source.matchAll(call)) {
    const [, op, rest] = match;
    const args = rest.slice(0, 200);
    const firstArg = args.trimStart();
    const namesAudit = /^["'`]auditLogs["'`]/.test(firstArg);
    const literalTable = /^["'`]/.test(firstArg);
    const auditId = op !== "insert" && /audit/i.test(args.split(")")[0] ?? "");
    if (namesAudit || auditId || !literalTable) {
      const line = source.slice(0, match.index).split("\n").length;
      found.push({ file, line, op, text: match[0].split("\n")[0].slice(0, 120) });
    }
  }
  return found;
}

describe("the audit trail is append-only", () => {
  test("no code in convex/ writes auditLogs except appendAudit (insert) and the retention pass (delete)", () => {
    const offending: string[] = [];
    let allowedSeen = 0;
    for (const path of sourceFiles(CONVEX)) {
      const file = relative(ROOT, path).split("\\").join("/");
      for (const write of auditWrites(file, readFileSync(path, "utf8"))) {
        if (ALLOWED[file] === write.op) {
          allowedSeen++;
          continue;
        }
        offending.push(`${write.file}:${write.line} ${write.op}: ${write.text}`);
      }
    }
    expect(offending, `writes to auditLogs outside appendAudit and the retention pass:\n${offending.join("\n")}`).toEqual([]);
    // The scan does see the two allowed writers (an empty scan would pass vacuously).
    expect(allowedSeen).toBeGreaterThanOrEqual(2);
  });

  test("the scan names the file of any write it forbids", () => {
    const bad = [
      'await ctx.db.patch("auditLogs", row._id, { detail: "x" });',
      'await ctx.db.delete("auditLogs", id);',
      "await ctx.db.delete(auditId);",
      'await ctx.db.replace("auditLogs", row._id, row);',
      "await ctx.db.insert(table, row);",
    ];
    for (const line of bad) {
      expect(auditWrites("convex/evil.ts", `x;\n${line}\n`), line).toEqual([expect.objectContaining({ file: "convex/evil.ts", line: 2 })]);
    }
    expect(auditWrites("convex/fine.ts", 'await ctx.db.patch("instances", id, { auditNote: 1 });\n')).toHaveLength(1);
    expect(auditWrites("convex/fine.ts", 'await ctx.db.patch("instances", instanceId, { status });\n')).toEqual([]);
  });
});

describe("circuit changes are named by what they change", () => {
  test("opened, closed, re-opened, probe started, failures counted and reset", () => {
    expect(circuitChange(null, { failures: 1 })).toBe("circuit.failures_counted");
    expect(circuitChange({ failures: 4 }, { failures: 5, openedAt: 10 })).toBe("circuit.opened");
    expect(circuitChange({ failures: 5, openedAt: 10 }, { failures: 0 })).toBe("circuit.closed");
    expect(circuitChange({ failures: 5, openedAt: 10 }, { failures: 6, openedAt: 50 })).toBe("circuit.reopened");
    const probe = { jobId: "j", step: "pagesProject" as const, attempt: 2, until: 99 };
    expect(circuitChange({ failures: 5, openedAt: 10 }, { failures: 5, openedAt: 10, probe })).toBe("circuit.probe_started");
    expect(circuitChange({ failures: 2 }, { failures: 0 })).toBe("circuit.failures_reset");
  });
});

describe("what the audit trail records", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const trail = (t: TestBackend, correlationId: string) => t.query(internal.audit.listForCorrelation, { correlationId });

  test("a webhook receipt and its outcome are audited under the event's id; a redelivery is audited as a duplicate", async () => {
    const t = setupBackend();
    const { event, sessionId } = await sendCheckout(t);
    await drain(t);
    expect((await statusOf(t, sessionId)).body.status).toBe("ready");
    const actions = (await trail(t, event.id)).map((e) => e.action);
    expect(actions.slice(0, 1)).toEqual(["stripe.received"]);
    expect(actions).toContain("stripe.provisioning_started");
    // The flow the event started carries its id too: the customer, instance, job and its steps.
    expect(actions).toEqual(expect.arrayContaining(["customer.created", "instance.created", "job.created"]));
    const rows = await trail(t, event.id);
    expect(rows.every((r) => r.correlationId === event.id && r.actor.length > 0)).toBe(true);
    expect(rows.find((r) => r.action === "stripe.received")).toMatchObject({ actor: `stripe:${event.id}`, detail: "checkout.session.completed" });

    expect((await sendEvent(t, event)).status).toBe(200);
    const after = await trail(t, event.id);
    expect(after.filter((r) => r.action === "stripe.duplicate")).toHaveLength(1);
  });

  test("an ignored event's outcome is audited too", async () => {
    const t = setupBackend();
    const event = { ...checkoutEvent(), type: "customer.created" };
    expect((await sendEvent(t, event)).status).toBe(200);
    await drain(t);
    expect((await trail(t, event.id)).map((r) => r.action)).toEqual(["stripe.received", "stripe.ignored"]);
  });

  test("a circuit opening and closing is audited with the job's correlation id", async () => {
    const t = setupBackend({ env: { CIRCUIT_FAILURE_THRESHOLD: "2", CIRCUIT_COOLDOWN_MS: "1000", RETRY_MAX_ATTEMPTS: "5" } });
    await t.mutation(internal.sandbox.injectFault, { operation: "pagesProject", kind: "transient", times: 3 });
    const { event, sessionId } = await sendCheckout(t);
    await drain(t);
    expect((await statusOf(t, sessionId)).body.status).toBe("ready");
    const circuit = (await trail(t, event.id)).filter((r) => r.action.startsWith("circuit."));
    const actions = circuit.map((r) => r.action);
    expect(actions).toContain("circuit.opened");
    expect(actions[actions.length - 1]).toBe("circuit.closed");
    expect(actions.indexOf("circuit.opened")).toBeLessThan(actions.lastIndexOf("circuit.closed"));
    expect(circuit.every((r) => r.detail?.startsWith("cloudflare:") && r.jobId !== undefined)).toBe(true);
  });

  test("an injected fault is audited with what fails, how and for whom", async () => {
    const t = setupBackend();
    await t.mutation(internal.sandbox.injectFault, { operation: "probeSite", kind: "permanent", times: 2, instanceId: "i1", actor: "operator:ana" });
    const rows = await t.run((ctx) => ctx.db.query("auditLogs").withIndex("by_action", (q) => q.eq("action", "sandbox.fault_injected")).collect());
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor: "operator:ana", detail: "cloudflare.probeSite permanent x2 for instance i1", correlationId: expect.stringMatching(/^fault:/) });
  });
});
