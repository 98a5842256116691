// Operator reads of the append-only audit trail. Nothing here (or anywhere) edits it.
import { v } from "convex/values";
import { internalMutation, internalQuery } from "./_generated/server";
import { vAuditEntry } from "./lib/validators";
import { appendAudit, expandAudit } from "./model/audit";


/** A job's audit trail, oldest first. */
export const listForJob = internalQuery({
  args: { jobId: v.id("provisioningJobs"), limit: v.optional(v.number()) },
  returns: v.array(vAuditEntry),
  handler: async (ctx, { jobId, limit }) => {
    const rows = await ctx.db
      .query("auditLogs")
      .withIndex("by_jobId", (q) => q.eq("jobId", jobId))
      .take(Math.min(limit ?? 500, 2000));
    return rows.flatMap(({ _id, _creationTime, ...row }) => expandAudit(row)).slice(0, Math.min(limit ?? 500, 2000));
  },
});

/** An instance's audit trail (admin calls, health checks, job transitions), oldest first. */
export const listForInstance = internalQuery({
  args: { instanceId: v.id("instances"), limit: v.optional(v.number()) },
  returns: v.array(vAuditEntry),
  handler: async (ctx, { instanceId, limit }) => {
    const rows = await ctx.db
      .query("auditLogs")
      .withIndex("by_instanceId", (q) => q.eq("instanceId", instanceId))
      .take(Math.min(limit ?? 500, 2000));
    return rows.flatMap(({ _id, _creationTime, ...row }) => expandAudit(row)).slice(0, Math.min(limit ?? 500, 2000));
  },
});

/** Records an admin call that touched no job or instance (an unknown id, say). */
export const recordAdminCall = internalMutation({
  args: { actor: v.string(), action: v.string(), detail: v.optional(v.string()), token: v.optional(v.string()) },
  returns: v.null(),
  handler: async (ctx, args) => {
    await appendAudit(ctx, args);
    return null;
  },
});
