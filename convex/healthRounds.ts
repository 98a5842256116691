// Health rounds: one action per due batch probes its members' sites and backends (and, for
// suspects, the management view), then one mutation folds the results in with hysteresis,
// opening and resolving incidents. The fleet-wide deep sweep lists the providers' resources on
// its slower cadence and marks members whose organization or Pages deployment looks wrong.
import { v } from "convex/values";
import { internal } from "./_generated/api";
import type { Doc, Id } from "./_generated/dataModel";
import { internalAction, internalMutation, internalQuery, type MutationCtx } from "./_generated/server";
import { loadConfig, type Config } from "./lib/config";
import { log, cronBatch } from "./lib/log";
import { vCheckResult, vHealthCheckName, type CheckResult, type HealthCheckName, type HealthMember } from "./lib/validators";
import { appendAudit } from "./model/audit";
import { countLeft, countMoved, dashboardStatus } from "./model/healthCounts";
import {
  applyResults,
  DEEP_CHECKS,
  deepChecksToProbe,
  nextRoundAt,
  probeVerdict,
  type DeepCheckName,
  type Verdict,
} from "./model/healthRules";
import { claimBatch, enqueueBatchRun } from "./model/healthSchedule";
import { openIncident, resolveIncident, updateIncident } from "./model/incidents";
import { isLive } from "./model/lifecycleRules";
import { outcomeForError } from "./providers/classify";
import { providersFor } from "./providers";
import type { ProbeOutcome, ProbeTarget } from "./providers/types";

const ROUND_TRIGGER = "health:round";
const vDeepCheckName = v.union(v.literal("organization"), v.literal("pages"));

const vTarget = v.object({
  instanceId: v.id("instances"),
  /** Its log thread: the instance's provisioning event (members from before it: `health:<instanceId>`). */
  correlationId: v.string(),
  plan: v.string(),
  site: v.optional(v.object({ url: v.string(), name: v.string() })),
  backend: v.optional(v.object({ url: v.string(), name: v.string() })),
  organizationId: v.optional(v.string()),
  pagesProjectName: v.optional(v.string()),
  deep: v.array(vDeepCheckName),
});

/** Where the customers reach a tenant's site (TENANT_SITE_URL_TEMPLATE). */
export function siteUrlOf(config: Config, instance: Doc<"instances">): string | null {
  const { pagesSubdomain, pagesProjectName } = instance.resources;
  const values: Record<string, string | undefined> = { subdomain: pagesSubdomain, project: pagesProjectName, instanceId: instance._id };
  let missing = false;
  const url = config.TENANT_SITE_URL_TEMPLATE.replace(/\{(subdomain|project|instanceId)\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) missing = true;
    return value ?? "";
  });
  return missing ? null : url;
}

/**
 * The members of a claimed batch that are due, with what to probe, and those whose instance is
 * no longer monitored (suspended, being deprovisioned, deleted). Null when the claim was lost.
 */
export const loadBatchTargets = internalQuery({
  args: { batchId: v.id("healthBatches"), token: v.string() },
  returns: v.union(
    v.null(),
    v.object({
      due: v.array(vTarget),
      leaving: v.array(v.object({ instanceId: v.id("instances"), reason: v.string() })),
    }),
  ),
  handler: async (ctx, { batchId, token }) => {
    const batch = await ctx.db.get("healthBatches", batchId);
    if (!batch || batch.claim?.token !== token) return null;
    const config = loadConfig();
    // The pool may start a run a little before the time it was claimed for: that run is for runAt.
    const dueBy = Math.max(Date.now(), batch.claim.runAt);
    const due = [];
    const leaving = [];
    for (const member of batch.members) {
      if (member.dueAt > dueBy) continue;
      const instance = await ctx.db.get("instances", member.instanceId);
      if (!instance || !isLive(instance.status)) {
        leaving.push({ instanceId: member.instanceId, reason: instance ? `instance ${instance.status}` : "instance gone" });
        continue;
      }
      const { resources } = instance;
      const siteUrl = siteUrlOf(config, instance);
      due.push({
        instanceId: instance._id,
        correlationId: member.correlationId ?? `health:${instance._id}`,
        plan: instance.plan,
        ...(siteUrl ? { site: { url: siteUrl, name: resources.pagesProjectName ?? "" } } : {}),
        ...(resources.convexDeploymentUrl
          ? { backend: { url: resources.convexDeploymentUrl, name: resources.convexDeploymentName ?? "" } }
          : {}),
        ...(resources.workosOrganizationId ? { organizationId: resources.workosOrganizationId } : {}),
        ...(resources.pagesProjectName ? { pagesProjectName: resources.pagesProjectName } : {}),
        deep: deepChecksToProbe(member),
      });
    }
    return { due, leaving };
  },
});

const vMemberResult = v.object({
  instanceId: v.id("instances"),
  plan: v.string(),
  checks: v.array(v.object({ name: vHealthCheckName, result: vCheckResult })),
});

const fromProbe = (outcome: ProbeOutcome, at: number): CheckResult => ({
  ok: outcome.ok,
  at,
  detail: outcome.detail,
  ms: outcome.ms,
  ...(outcome.status !== undefined ? { status: outcome.status } : {}),
});

/** A claimed run's time has come: hand it to the health pool, unless its claim was taken over. */
export const startClaimedBatch = internalMutation({
  args: { batchId: v.id("healthBatches"), token: v.string() },
  returns: v.null(),
  handler: async (ctx, { batchId, token }) => {
    const batch = await ctx.db.get("healthBatches", batchId);
    if (!batch || batch.claim?.token !== token) return null;
    await enqueueBatchRun(ctx, loadConfig(), batchId, token);
    return null;
  },
});

/** Probes one claimed batch's due members and records the results (health pool). */
export const checkBatch = internalAction({
  args: { batchId: v.id("healthBatches"), token: v.string() },
  returns: v.null(),
  handler: async (ctx, { batchId, token }) => {
    const config = loadConfig();
    const plan = await ctx.runQuery(internal.healthRounds.loadBatchTargets, { batchId, token });
    if (!plan) return null;
    const providers = providersFor({ ctx, config, correlationId: `health:${batchId}` });
    const sites = plan.due.filter((t) => t.site);
    const backends = plan.due.filter((t) => t.backend);
    const asTarget = (t: { instanceId: string; correlationId: string }, target: { url: string; name: string }): ProbeTarget => ({
      instanceId: t.instanceId,
      correlationId: t.correlationId,
      ...target,
    });
    const [siteOutcomes, backendOutcomes, deepOutcomes] = await Promise.all([
      sites.length > 0 ? providers.cloudflare.probeSites(sites.map((t) => asTarget(t, t.site!))) : [],
      backends.length > 0 ? providers.convex.probeBackends(backends.map((t) => asTarget(t, t.backend!))) : [],
      // A deep probe's provider calls carry the instance's thread, so they get its own adapters.
      Promise.all(
        plan.due.flatMap((t) =>
          t.deep.map((name) => probeDeep(providersFor({ ctx, config, correlationId: t.correlationId }), t, name)),
        ),
      ),
    ]);
    const at = Date.now();
    const results = new Map<Id<"instances">, { name: HealthCheckName; result: CheckResult }[]>();
    const add = (instanceId: Id<"instances">, name: HealthCheckName, result: CheckResult) =>
      results.set(instanceId, [...(results.get(instanceId) ?? []), { name, result }]);
    const missing = (detail: string): CheckResult => ({ ok: false, at, detail });
    for (const target of plan.due) {
      if (!target.site) add(target.instanceId, "site", missing("no site URL (not provisioned, or TENANT_SITE_URL_TEMPLATE names a missing field)"));
      if (!target.backend) add(target.instanceId, "backend", missing("no deployment URL (not provisioned)"));
    }
    sites.forEach((t, i) => add(t.instanceId, "site", fromProbe(siteOutcomes[i], at)));
    backends.forEach((t, i) => add(t.instanceId, "backend", fromProbe(backendOutcomes[i], at)));
    for (const deep of deepOutcomes) if (deep.result) add(deep.instanceId, deep.name, { ...deep.result, at });
    await ctx.runMutation(internal.healthRounds.recordBatchResults, {
      batchId,
      token,
      at,
      results: plan.due.map((t) => ({ instanceId: t.instanceId, plan: t.plan, checks: results.get(t.instanceId) ?? [] })),
      leaving: plan.leaving,
    });
    return null;
  },
});

/** One direct probe of the management view; no result when the probe could not be made. */
async function probeDeep(
  providers: ReturnType<typeof providersFor>,
  target: { instanceId: Id<"instances">; correlationId: string; organizationId?: string; pagesProjectName?: string },
  name: DeepCheckName,
): Promise<{ instanceId: Id<"instances">; name: DeepCheckName; result?: CheckResult }> {
  const id = name === "organization" ? target.organizationId : target.pagesProjectName;
  if (id === undefined) return { instanceId: target.instanceId, name, result: { ok: false, at: 0, detail: "not provisioned" } };
  try {
    const probe =
      name === "organization"
        ? await providers.workos.probeOrganization({ organizationId: id })
        : await providers.cloudflare.probePagesProject({ projectName: id });
    return { instanceId: target.instanceId, name, result: { ok: probe.ok, at: 0, detail: probe.detail } };
  } catch (error) {
    // Could not ask (provider outage, budget): a provider's trouble is not the tenant's; ask next time.
    const { outcome } = outcomeForError(error);
    log("warn", "health.deep_probe_unavailable", { correlationId: target.correlationId, instanceId: target.instanceId, check: name, outcome: outcome.kind });
    return { instanceId: target.instanceId, name };
  }
}

/**
 * Folds a run's results into its batch (only the run holding the claim): hysteresis, the
 * instance's confirmed status when it changes, incidents, history rows for changed results, the
 * members that left, and the batch's next run (a confirmation re-check, or its next round).
 */
export const recordBatchResults = internalMutation({
  args: {
    batchId: v.id("healthBatches"),
    token: v.string(),
    at: v.number(),
    results: v.array(vMemberResult),
    leaving: v.array(v.object({ instanceId: v.id("instances"), reason: v.string() })),
  },
  returns: v.null(),
  handler: async (ctx, { batchId, token, at, results, leaving }) => {
    const batch = await ctx.db.get("healthBatches", batchId);
    if (!batch || batch.claim?.token !== token) return null;
    const config = loadConfig();
    const thresholds = { failure: config.HEALTH_FAILURE_THRESHOLD, success: config.HEALTH_SUCCESS_THRESHOLD };
    const nextRound = nextRoundAt(batch.slot, config.HEALTH_CHECK_INTERVAL_MS, Math.max(at, batch.claim.runAt));
    const byId = new Map(results.map((r) => [r.instanceId, r]));
    const gone = new Map(leaving.map((l) => [l.instanceId, l.reason]));
    const members: HealthMember[] = [];
    for (const member of batch.members) {
      const reason = gone.get(member.instanceId);
      if (reason !== undefined) {
        await stopMonitoring(ctx, config, member, reason, at);
        continue;
      }
      const result = byId.get(member.instanceId);
      if (!result) {
        members.push(member);
        continue;
      }
      const checks = Object.fromEntries(result.checks.map((c) => [c.name, c.result])) as Partial<Record<HealthCheckName, CheckResult>>;
      const verdict = applyResults(member, checks, at, thresholds);
      const updated = await settleVerdict(ctx, config, member, verdict, result.plan, at);
      members.push({ ...updated, dueAt: verdict.needsConfirmation ? at + config.HEALTH_CONFIRM_INTERVAL_MS : nextRound });
    }
    const confirmAt = Math.min(...members.filter((m) => m.dueAt < nextRound).map((m) => m.dueAt));
    await ctx.db.patch("healthBatches", batchId, {
      members,
      size: members.length,
      claim: undefined,
      dueAt: members.length > 0 ? Math.min(...members.map((m) => m.dueAt)) : nextRound,
      oldestCheckAt: members.length > 0 ? Math.min(...members.map((m) => m.checkedAt ?? 0)) : at,
      updatedAt: at,
    });
    // A confirmation re-check runs at its own time, not at the next cron call.
    if (Number.isFinite(confirmAt)) await claimBatch(ctx, config, batchId, confirmAt);
    return null;
  },
});

/** Writes what a verdict changed: instance status, counts, incident, history. Returns the member to keep. */
async function settleVerdict(
  ctx: MutationCtx,
  config: Config,
  member: HealthMember,
  verdict: Verdict,
  plan: string,
  at: number,
): Promise<HealthMember> {
  let next: HealthMember = { ...verdict.member, plan };
  const { transition, failing } = verdict;
  if (transition || plan !== member.plan) {
    await countMoved(
      ctx,
      member.instanceId,
      { plan: member.plan, status: dashboardStatus(member.status) },
      { plan, status: dashboardStatus(next.status) },
    );
  }
  if (transition) {
    await ctx.db.patch("instances", member.instanceId, {
      healthStatus: transition.to,
      lastHealthCheckAt: at,
      unhealthySince: next.unhealthySince,
    });
    await appendAudit(ctx, {
      actor: ROUND_TRIGGER,
      action: "instance.health_changed",
      instanceId: member.instanceId,
      detail: `${transition.from ?? "unchecked"} -> ${transition.to}${failing.length ? ` (failing: ${failing.join(", ")})` : ""}`,
    });
    if (transition.to === "active") {
      // The incident keeps its last failing checks: the recovery notice says what had failed.
      if (member.incidentId) await resolveIncident(ctx, config, member.incidentId, { at, resolution: "recovered" });
      next = { ...next, incidentId: undefined };
    } else if (member.incidentId) {
      await updateIncident(ctx, config, member.incidentId, { severity: transition.to, failing, at });
    } else {
      const incidentId = await openIncident(ctx, config, {
        instanceId: member.instanceId,
        ...(member.correlationId ? { correlationId: member.correlationId } : {}),
        plan,
        severity: transition.to,
        failing,
        since: next.unhealthySince ?? at,
        at,
      });
      next = { ...next, incidentId };
    }
  } else if (member.incidentId && verdict.changed && failing.length > 0 && next.status !== "active") {
    await updateIncident(ctx, config, member.incidentId, { severity: next.status!, failing, at });
  }
  if (verdict.changed) {
    const failed = Object.fromEntries(failing.map((name) => [name, next.checks[name]!]));
    await ctx.db.insert("healthChecks", {
      instanceId: member.instanceId,
      at,
      overall: probeVerdict(candidateFromFailing(failing)),
      ...(next.status ? { status: next.status } : {}),
      failing,
      ...(failing.length > 0 ? { checks: failed } : {}),
      trigger: ROUND_TRIGGER,
    });
  }
  return next;
}

const candidateFromFailing = (failing: HealthCheckName[]) =>
  failing.length === 0 ? "active" : failing.some((name) => name === "site" || name === "backend") ? "down" : "degraded";

/** A member whose instance is no longer live: out of its batch and the counts, its incident closed. */
async function stopMonitoring(ctx: MutationCtx, config: Config, member: HealthMember, reason: string, at: number) {
  await countLeft(ctx, member.instanceId, member.plan, dashboardStatus(member.status));
  if (member.incidentId) await resolveIncident(ctx, config, member.incidentId, { at, resolution: reason });
  const instance = await ctx.db.get("instances", member.instanceId);
  if (instance) {
    await ctx.db.patch("instances", member.instanceId, { healthBatchId: undefined, healthStatus: undefined, unhealthySince: undefined });
  }
}

// ---- The deep sweep ------------------------------------------------------------------------

const SWEEP_BATCHES_PER_PAGE = 5;

/** A page of batches with each member's management-view ids (from its instance). */
export const listDeepTargets = internalQuery({
  args: { cursor: v.union(v.string(), v.null()) },
  returns: v.object({
    batches: v.array(
      v.object({
        batchId: v.id("healthBatches"),
        members: v.array(
          v.object({ instanceId: v.id("instances"), organizationId: v.optional(v.string()), pagesProjectName: v.optional(v.string()) }),
        ),
      }),
    ),
    continueCursor: v.string(),
    isDone: v.boolean(),
  }),
  handler: async (ctx, { cursor }) => {
    const page = await ctx.db.query("healthBatches").paginate({ numItems: SWEEP_BATCHES_PER_PAGE, cursor });
    const batches = [];
    for (const batch of page.page) {
      const members = [];
      for (const member of batch.members) {
        const instance = await ctx.db.get("instances", member.instanceId);
        if (!instance || !isLive(instance.status)) continue;
        members.push({
          instanceId: member.instanceId,
          ...(instance.resources.workosOrganizationId ? { organizationId: instance.resources.workosOrganizationId } : {}),
          ...(instance.resources.pagesProjectName ? { pagesProjectName: instance.resources.pagesProjectName } : {}),
        });
      }
      batches.push({ batchId: batch._id, members });
    }
    return { batches, continueCursor: page.continueCursor, isDone: page.isDone };
  },
});

/**
 * The management view, fleet-wide: one paged listing per provider (a few requests per hundred
 * instances, on the providers' request budgets), compared with every member. Members whose
 * organization is missing or whose latest Pages deployment failed become suspects, probed
 * directly by their batch's next run, which decides.
 */
export const deepSweep = internalAction({
  args: { token: v.string() },
  returns: v.null(),
  handler: async (ctx, { token }) => {
    const config = loadConfig();
    const startedAt = Date.now();
    const providers = providersFor({ ctx, config, correlationId: `health:deep:${startedAt}` });
    let organizations: Set<string>;
    let pages: Map<string, boolean>;
    try {
      const [orgList, pagesList] = await Promise.all([providers.workos.listOrganizations(), providers.cloudflare.listPagesDeployments()]);
      organizations = new Set(orgList.map((org) => org.id));
      pages = new Map(pagesList.map((project) => [project.name, project.live]));
    } catch (error) {
      // A provider's listing failed: nobody is suspected for it; the sweep is tried again soon.
      const { outcome } = outcomeForError(error);
      log("warn", "health.deep_sweep_failed", { correlationId: `health:deep:${startedAt}`, outcome: outcome.kind });
      await ctx.runMutation(internal.healthRounds.finishDeepSweep, { token, startedAt, failed: true, organizations: 0, pagesProjects: 0, suspects: 0 });
      return null;
    }
    let suspects = 0;
    let cursor: string | null = null;
    for (;;) {
      const page: { batches: { batchId: Id<"healthBatches">; members: { instanceId: Id<"instances">; organizationId?: string; pagesProjectName?: string }[] }[]; continueCursor: string; isDone: boolean } =
        await ctx.runQuery(internal.healthRounds.listDeepTargets, { cursor });
      for (const batch of page.batches) {
        const found = batch.members.flatMap((member) => {
          const checks = DEEP_CHECKS.filter((name) =>
            name === "organization"
              ? member.organizationId !== undefined && !organizations.has(member.organizationId)
              : member.pagesProjectName !== undefined && pages.get(member.pagesProjectName) !== true,
          );
          return checks.length > 0 ? [{ instanceId: member.instanceId, checks }] : [];
        });
        if (found.length === 0) continue;
        suspects += found.length;
        await ctx.runMutation(internal.healthRounds.markDeepSuspects, { batchId: batch.batchId, suspects: found });
      }
      if (page.isDone) break;
      cursor = page.continueCursor;
    }
    await ctx.runMutation(internal.healthRounds.finishDeepSweep, {
      token,
      startedAt,
      failed: false,
      organizations: organizations.size,
      pagesProjects: pages.size,
      suspects,
    });
    return null;
  },
});

/** Marks suspects and makes them due now (their batch's next run probes them directly). */
export const markDeepSuspects = internalMutation({
  args: {
    batchId: v.id("healthBatches"),
    suspects: v.array(v.object({ instanceId: v.id("instances"), checks: v.array(vDeepCheckName) })),
  },
  returns: v.null(),
  handler: async (ctx, { batchId, suspects }) => {
    const batch = await ctx.db.get("healthBatches", batchId);
    if (!batch) return null;
    const now = Date.now();
    const byId = new Map(suspects.map((s) => [s.instanceId, s.checks]));
    const members = batch.members.map((member) => {
      const checks = byId.get(member.instanceId);
      return checks ? { ...member, deepSuspect: checks, dueAt: Math.min(member.dueAt, now) } : member;
    });
    await ctx.db.patch("healthBatches", batchId, {
      members,
      // A claimed batch keeps its lease; its run's record makes the suspects due again.
      dueAt: batch.claim ? batch.dueAt : Math.min(...members.map((m) => m.dueAt)),
      updatedAt: now,
    });
    return null;
  },
});

export const finishDeepSweep = internalMutation({
  args: {
    token: v.string(),
    startedAt: v.number(),
    failed: v.boolean(),
    organizations: v.number(),
    pagesProjects: v.number(),
    suspects: v.number(),
  },
  returns: v.null(),
  handler: async (ctx, args) => {
    const schedule = await ctx.db.query("healthSchedule").first();
    if (!schedule || schedule.deepClaim?.token !== args.token) return null;
    const config = loadConfig();
    const now = Date.now();
    const retry = Math.min(config.HEALTH_DEEP_CHECK_INTERVAL_MS, 5 * 60_000);
    await ctx.db.patch("healthSchedule", schedule._id, {
      deepClaim: undefined,
      deepDueAt: args.failed ? now + retry : args.startedAt + config.HEALTH_DEEP_CHECK_INTERVAL_MS,
      ...(args.failed
        ? {}
        : {
            lastDeepSweep: {
              startedAt: args.startedAt,
              finishedAt: now,
              organizations: args.organizations,
              pagesProjects: args.pagesProjects,
              suspects: args.suspects,
            },
          }),
    });
    return null;
  },
});

// ---- Retention ------------------------------------------------------------------------------

const PRUNE_PER_CALL = 500;

/** Deletes health history older than HEALTH_RETENTION_MS, a bounded page per call, continuing until done. */
export const pruneHealthHistory = internalMutation({
  args: {},
  returns: v.object({ deleted: v.number() }),
  handler: cronBatch("healthRounds.pruneHealthHistory", async (ctx) => {
    const config = loadConfig();
    const cutoff = Date.now() - config.HEALTH_RETENTION_MS;
    const old = await ctx.db
      .query("healthChecks")
      .withIndex("by_at", (q) => q.lt("at", cutoff))
      .take(PRUNE_PER_CALL);
    for (const row of old) await ctx.db.delete("healthChecks", row._id);
    if (old.length === PRUNE_PER_CALL) await ctx.scheduler.runAfter(0, internal.healthRounds.pruneHealthHistory, {});
    return { deleted: old.length };
  }),
});
