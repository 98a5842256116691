// Append-only audit trail: every change to a job, instance, customer or circuit, every Stripe
// webhook receipt and outcome, every fault injection and admin call, with who caused it and the
// correlation id of the flow it belongs to. appendAudit is the one writer of auditLogs: nothing
// updates a row, and only the retention pass (retention.ts) deletes rows past AUDIT_RETENTION_MS.
// tests/audit.test.ts scans convex/ for any other write. An append is one insert and reads
// nothing, so it never conflicts with another transaction (docs/contention.md).
import type { Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import type { AuditChange, FailureClass, StepName } from "../lib/validators";

export type AuditEntry = {
  more?: AuditChange[];
  actor: string;
  action: string;
  /** The flow: a Stripe event id, a job's correlation id, a fault's or an admin call's own id. */
  correlationId?: string;
  jobId?: Id<"provisioningJobs">;
  instanceId?: Id<"instances">;
  detail?: string;
  step?: StepName;
  attempt?: number;
  delayMs?: number;
  errorClass?: FailureClass;
  /** The admin token's name, on admin calls; never the token. */
  token?: string;
};

export async function appendAudit(ctx: MutationCtx, entry: AuditEntry): Promise<void> {
  await ctx.db.insert("auditLogs", { at: Date.now(), ...entry });
}

type StoredAudit = AuditEntry & { at: number };

/** A stored row as the entries it holds: its own change first, then `more`, each with who and when. */
export function expandAudit(row: StoredAudit): Omit<StoredAudit, "more">[] {
  const { more, ...first } = row;
  const shared = { at: row.at, actor: row.actor, jobId: row.jobId, instanceId: row.instanceId, correlationId: row.correlationId };
  return [first, ...(more ?? []).map((change) => ({ ...shared, ...change }))];
}
