// Append-only audit trail: every job state change and admin call, with who caused it.
// Nothing updates or deletes these rows.
import type { Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import type { FailureClass, StepName } from "../lib/validators";

export type AuditEntry = {
  actor: string;
  action: string;
  jobId?: Id<"provisioningJobs">;
  instanceId?: Id<"instances">;
  detail?: string;
  step?: StepName;
  attempt?: number;
  delayMs?: number;
  errorClass?: FailureClass;
};

export async function appendAudit(ctx: MutationCtx, entry: AuditEntry): Promise<void> {
  await ctx.db.insert("auditLogs", { at: Date.now(), ...entry });
}
