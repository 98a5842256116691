// Append-only audit trail: every job state change and admin call, with who caused it.
// Nothing updates or deletes these rows.
import type { Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import type { AuditChange, FailureClass, StepName } from "../lib/validators";

export type AuditEntry = {
  more?: AuditChange[];
  actor: string;
  action: string;
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
  const shared = { at: row.at, actor: row.actor, jobId: row.jobId, instanceId: row.instanceId };
  return [first, ...(more ?? []).map((change) => ({ ...shared, ...change }))];
}
