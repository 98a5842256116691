// The sandbox providers' state: simulated resources and injected faults, kept in
// Convex so a deployment with no provider accounts runs end to end. Only
// providers/sandbox.ts and operators (fault injection) call these.
import { v } from "convex/values";
import { internalMutation, internalQuery, type MutationCtx } from "./_generated/server";
import { fail } from "./lib/errors";
import { vProviderName } from "./lib/validators";
import { OPERATIONS, resolveOperation } from "./providers/operations";
import { appendAudit } from "./model/audit";

/** The operations whose faults may be scoped to one instance: one tenant goes dark, the rest stay up. */
const INSTANCE_SCOPED_OPERATIONS: ReadonlySet<string> = new Set(["cloudflare.probeSite", "convex.probeBackend"]);
const vFaultKind = v.union(v.literal("transient"), v.literal("rate_limited"), v.literal("permanent"));
const vResource = v.object({ externalId: v.string(), name: v.string(), attributes: v.record(v.string(), v.string()) });
/**
 * Resources per `list` page, as the live adapters page (WorkOS 100, Cloudflare Pages 25): a
 * bounded read per call, and as many simulated requests as the real listing would make.
 */
const LIST_PAGE_SIZE: Partial<Record<string, number>> = { workos: 100, cloudflare: 25 };
const DEFAULT_LIST_PAGE_SIZE = 100;

/**
 * Performs one simulated provider operation, after consuming an injected fault if one is due.
 * `ensure` adopts the live resource with that name or creates it; `update` merges
 * attributes into an existing one and drops those named in `removeAttributes`; `get` reads
 * it by name, `getById` by external id (passed as `name`); `delete` removes it by external
 * id ("already gone" is fine); `list` returns one page of the resources of that kind (only
 * those whose name starts with `prefix`, when given), from `cursor` (null: the first), with
 * `isDone` and the `continueCursor` of the next page.
 */
export const applyOperation = internalMutation({
  args: {
    operation: v.string(),
    provider: vProviderName,
    kind: v.string(),
    name: v.string(),
    action: v.union(
      v.literal("ensure"),
      v.literal("update"),
      v.literal("get"),
      v.literal("getById"),
      v.literal("delete"),
      v.literal("list"),
    ),
    attributes: v.optional(v.record(v.string(), v.string())),
    removeAttributes: v.optional(v.array(v.string())),
    cursor: v.optional(v.union(v.string(), v.null())),
    prefix: v.optional(v.string()),
  },
  returns: v.union(
    v.object({
      result: v.literal("fault"),
      fault: v.object({ kind: vFaultKind, message: v.string(), retryAfterMs: v.optional(v.number()) }),
    }),
    v.object({ result: v.literal("ok"), resource: v.union(vResource, v.null()), created: v.boolean() }),
    v.object({ result: v.literal("list"), resources: v.array(vResource), isDone: v.boolean(), continueCursor: v.string() }),
  ),
  handler: async (ctx, args) => {
    const fault = await ctx.db
      .query("sandboxFaults")
      .withIndex("by_operation_and_instanceId", (q) => q.eq("operation", args.operation).eq("instanceId", undefined))
      .first();
    if (fault && fault.remaining > 0) {
      if (fault.remaining === 1) await ctx.db.delete("sandboxFaults", fault._id);
      else await ctx.db.patch("sandboxFaults", fault._id, { remaining: fault.remaining - 1 });
      return {
        result: "fault" as const,
        fault: {
          kind: fault.kind,
          message: fault.message ?? `injected ${fault.kind} fault in ${args.operation}`,
          ...(fault.retryAfterMs !== undefined ? { retryAfterMs: fault.retryAfterMs } : {}),
        },
      };
    }

    if (args.action === "list") {
      const { page, isDone, continueCursor } = await ctx.db
        .query("sandboxResources")
        .withIndex("by_provider_and_kind_and_name", (q) => {
          const ofKind = q.eq("provider", args.provider).eq("kind", args.kind);
          return args.prefix ? ofKind.gte("name", args.prefix).lt("name", `${args.prefix}\uffff`) : ofKind;
        })
        .paginate({ numItems: LIST_PAGE_SIZE[args.provider] ?? DEFAULT_LIST_PAGE_SIZE, cursor: args.cursor ?? null });
      return {
        result: "list" as const,
        resources: page.map((r) => ({ externalId: r.externalId, name: r.name, attributes: r.attributes })),
        isDone,
        continueCursor,
      };
    }
    const existing =
      args.action === "getById" || args.action === "delete"
        ? await ctx.db
            .query("sandboxResources")
            .withIndex("by_externalId", (q) => q.eq("externalId", args.name))
            .first()
            .then((doc) => (doc && doc.provider === args.provider && doc.kind === args.kind ? doc : null))
        : await ctx.db
            .query("sandboxResources")
            .withIndex("by_provider_and_kind_and_name", (q) =>
              q.eq("provider", args.provider).eq("kind", args.kind).eq("name", args.name),
            )
            .first();
    const now = Date.now();
    const view = (doc: { externalId: string; name: string; attributes: Record<string, string> }) => ({
      externalId: doc.externalId,
      name: doc.name,
      attributes: doc.attributes,
    });

    if (args.action === "delete") {
      if (existing) await ctx.db.delete("sandboxResources", existing._id);
      return { result: "ok" as const, resource: existing ? view(existing) : null, created: false };
    }
    if (args.action === "get" || args.action === "getById") return { result: "ok" as const, resource: existing ? view(existing) : null, created: false };
    if (args.action === "update") {
      if (!existing) return { result: "ok" as const, resource: null, created: false };
      const attributes = { ...existing.attributes, ...args.attributes };
      for (const key of args.removeAttributes ?? []) delete attributes[key];
      await ctx.db.patch("sandboxResources", existing._id, { attributes, updatedAt: now });
      return { result: "ok" as const, resource: view({ ...existing, attributes }), created: false };
    }
    if (existing) return { result: "ok" as const, resource: view(existing), created: false };
    const externalId = `${args.kind}_${randomToken(16)}`;
    const attributes = args.attributes ?? {};
    await ctx.db.insert("sandboxResources", {
      provider: args.provider,
      kind: args.kind,
      name: args.name,
      externalId,
      attributes,
      createdAt: now,
      updatedAt: now,
    });
    return { result: "ok" as const, resource: { externalId, name: args.name, attributes }, created: true };
  },
});

/**
 * Makes the next `times` calls of an operation fail with the given class. `operation`
 * is an operation name (`workos.ensureOrganization`), a step name (`workosOrg`) or a bare
 * name one provider has (`probeSite`). With `instanceId`, only probes of that instance fail
 * (one tenant goes dark while the rest stay up); it replaces the fault for the same operation
 * and instance only. Run it from the dashboard or `npm start -- --fail workosOrg:transient:2`.
 */
export const injectFault = internalMutation({
  args: {
    operation: v.string(),
    times: v.number(),
    kind: vFaultKind,
    message: v.optional(v.string()),
    retryAfterMs: v.optional(v.number()),
    instanceId: v.optional(v.string()),
    /** Who injects it (the audit trail's actor); default `sandbox:fault-injection`. */
    actor: v.optional(v.string()),
  },
  returns: v.object({ operation: v.string(), remaining: v.number() }),
  handler: async (ctx, args) => {
    const operation = resolveOperation(args.operation);
    if (!operation) {
      fail("BAD_REQUEST", `unknown operation "${args.operation}"; expected a step name or one of ${OPERATIONS.join(", ")}`);
    }
    if (!Number.isInteger(args.times) || args.times < 1) fail("BAD_REQUEST", "times must be a positive integer");
    if (args.instanceId !== undefined && !args.instanceId.trim()) fail("BAD_REQUEST", "instanceId must not be empty");
    if (args.instanceId !== undefined && !INSTANCE_SCOPED_OPERATIONS.has(operation)) {
      fail("BAD_REQUEST", `instanceId applies only to the health probes (${[...INSTANCE_SCOPED_OPERATIONS].join(", ")}), not to "${operation}"`);
    }
    const existing = await ctx.db
      .query("sandboxFaults")
      .withIndex("by_operation_and_instanceId", (q) => q.eq("operation", operation).eq("instanceId", args.instanceId))
      .first();
    const fault = {
      operation,
      kind: args.kind,
      remaining: args.times,
      message: args.message,
      retryAfterMs: args.retryAfterMs,
      instanceId: args.instanceId,
    };
    if (existing) await ctx.db.replace("sandboxFaults", existing._id, fault);
    else await ctx.db.insert("sandboxFaults", fault);
    // On record like any change an operator makes: what fails, how, how often, for whom.
    const scope = args.instanceId !== undefined ? ` for instance ${args.instanceId.slice(0, 64)}` : "";
    await appendAudit(ctx, {
      actor: args.actor ?? "sandbox:fault-injection",
      correlationId: `fault:${operation}:${Date.now()}`,
      action: "sandbox.fault_injected",
      detail: `${operation} ${args.kind} x${args.times}${scope}`,
    });
    return { operation, remaining: args.times };
  },
});

const PROBE_FAULT_STATUS = { transient: 503, rate_limited: 429, permanent: 404 } as const;
const STATUS_TEXT: Record<number, string> = { 404: "Not Found", 429: "Too Many Requests", 503: "Service Unavailable" };
const vProbeOperation = v.union(v.literal("cloudflare.probeSite"), v.literal("convex.probeBackend"));

/**
 * Health probes of a batch of sandbox tenants in one call, answered as their URLs would be.
 * Each target first takes an injected fault for its own instance, else one for the whole
 * operation (each failed target uses one of the fault's `remaining`), and fails with its
 * status (transient 503, rate_limited 429, permanent 404). Without a fault, a site is up
 * while its `pagesProject` exists, and a backend while its `deployment` exists unpaused.
 */
export const probeTargets = internalMutation({
  args: {
    operation: vProbeOperation,
    targets: v.array(v.object({ instanceId: v.string(), name: v.string() })),
  },
  returns: v.array(v.object({ ok: v.boolean(), detail: v.string(), status: v.optional(v.number()) })),
  handler: async (ctx, { operation, targets }) => {
    // No fault for the operation at all (the usual case): one read for the whole batch.
    const anyFault = await ctx.db
      .query("sandboxFaults")
      .withIndex("by_operation_and_instanceId", (q) => q.eq("operation", operation))
      .first();
    const outcomes = [];
    for (const target of targets) {
      const fault = anyFault ? await takeProbeFault(ctx, operation, target.instanceId) : null;
      outcomes.push(fault ?? (await probeResource(ctx, operation, target.name)));
    }
    return outcomes;
  },
});

type ProbeAnswer = { ok: boolean; detail: string; status?: number };

/** Consumes the fault due for this instance's probe (its own first, then the operation's), if any. */
async function takeProbeFault(ctx: MutationCtx, operation: string, instanceId: string): Promise<ProbeAnswer | null> {
  const due = async (forInstance: string | undefined) => {
    const fault = await ctx.db
      .query("sandboxFaults")
      .withIndex("by_operation_and_instanceId", (q) => q.eq("operation", operation).eq("instanceId", forInstance))
      .first();
    return fault && fault.remaining > 0 ? fault : null;
  };
  const fault = (await due(instanceId)) ?? (await due(undefined));
  if (!fault) return null;
  if (fault.remaining === 1) await ctx.db.delete("sandboxFaults", fault._id);
  else await ctx.db.patch("sandboxFaults", fault._id, { remaining: fault.remaining - 1 });
  const status = PROBE_FAULT_STATUS[fault.kind];
  return { ok: false, status, detail: `${status} ${STATUS_TEXT[status]}: ${fault.message ?? `injected ${fault.kind} fault`}` };
}

async function probeResource(ctx: MutationCtx, operation: string, name: string): Promise<ProbeAnswer> {
  const site = operation === "cloudflare.probeSite";
  const resource = await ctx.db
    .query("sandboxResources")
    .withIndex("by_provider_and_kind_and_name", (q) =>
      site ? q.eq("provider", "cloudflare").eq("kind", "pagesProject").eq("name", name) : q.eq("provider", "convex").eq("kind", "deployment").eq("name", name),
    )
    .first();
  if (!resource) return { ok: false, status: 404, detail: `404 Not Found: no ${site ? "Pages project" : "deployment"} ${name}` };
  if (!site && resource.attributes.paused === "true") {
    return { ok: false, status: 503, detail: `503 Service Unavailable: deployment ${name} is paused` };
  }
  return { ok: true, status: 200, detail: "200 OK" };
}

/** Lists simulated resources of one provider (newest first, at most `limit`). */
export const listResources = internalQuery({
  args: { provider: vProviderName, limit: v.optional(v.number()) },
  returns: v.array(
    v.object({ kind: v.string(), name: v.string(), externalId: v.string() }),
  ),
  handler: async (ctx, args) => {
    const rows = await ctx.db
      .query("sandboxResources")
      .withIndex("by_provider_and_kind_and_name", (q) => q.eq("provider", args.provider))
      .order("desc")
      .take(Math.min(args.limit ?? 100, 1000));
    return rows.map((row) => ({
      kind: row.kind,
      name: row.name,
      externalId: row.externalId,
    }));
  },
});

/** The ids of the Stripe events a sandbox tenant deployment accepted, in the order it received them. */
export const listTenantEvents = internalQuery({
  args: { deploymentName: v.string() },
  returns: v.array(v.string()),
  handler: async (ctx, args) => {
    // Named `<deploymentName>:<event id>` (providers/sandbox.ts deliverEvent): a name range.
    const prefix = `${args.deploymentName}:`;
    const rows = await ctx.db
      .query("sandboxResources")
      .withIndex("by_provider_and_kind_and_name", (q) =>
        q.eq("provider", "convex").eq("kind", "tenantEvent").gte("name", prefix).lt("name", `${prefix}\uffff`),
      )
      .take(1000);
    return rows
      .sort((a, b) => a.createdAt - b.createdAt || a._creationTime - b._creationTime)
      .map((row) => row.attributes.eventId ?? row.name.slice(prefix.length));
  },
});

/**
 * Puts a Stripe subscription or Checkout Session into the sandbox, or merges `attributes`
 * into the one with that id: what tests and the offline demo use to give the sandbox's Stripe
 * adapter state to list and retrieve. Attributes are strings, named as the adapter reads them
 * (subscription: status, customerId, priceId, instanceId; session: sessionStatus, paymentStatus,
 * mode, customerId, email, name, plan, subscriptionId; both: created in unix seconds). A new
 * row gets created = now, and Stripe's usual values for the rest (an active subscription; a
 * complete, paid subscription-mode session) unless given.
 *
 * ```ts
 * await t.mutation(internal.sandbox.seedStripe, { kind: "subscription", id: "sub_1", attributes: { status: "past_due" } });
 * ```
 */
export const seedStripe = internalMutation({
  args: {
    kind: v.union(v.literal("subscription"), v.literal("checkoutSession")),
    id: v.string(),
    attributes: v.record(v.string(), v.string()),
  },
  returns: v.object({ id: v.string(), attributes: v.record(v.string(), v.string()), created: v.boolean() }),
  handler: async (ctx, { kind, id, attributes }) => {
    if (!id.trim()) fail("BAD_REQUEST", "id must not be empty");
    if (attributes.created !== undefined && !/^\d+$/.test(attributes.created)) {
      fail("BAD_REQUEST", "created must be unix seconds");
    }
    const existing = await ctx.db
      .query("sandboxResources")
      .withIndex("by_provider_and_kind_and_name", (q) => q.eq("provider", "stripe").eq("kind", kind).eq("name", id))
      .first();
    const now = Date.now();
    if (existing) {
      const merged = { ...existing.attributes, ...attributes };
      await ctx.db.patch("sandboxResources", existing._id, { attributes: merged, updatedAt: now });
      return { id, attributes: merged, created: false };
    }
    const defaults: Record<string, string> =
      kind === "subscription" ? { status: "active" } : { sessionStatus: "complete", paymentStatus: "paid", mode: "subscription" };
    const stored = { created: String(Math.floor(now / 1000)), ...defaults, ...attributes };
    // The Stripe id is both the name (what `get` finds) and the external id.
    await ctx.db.insert("sandboxResources", {
      provider: "stripe",
      kind,
      name: id,
      externalId: id,
      attributes: stored,
      createdAt: now,
      updatedAt: now,
    });
    return { id, attributes: stored, created: true };
  },
});

function randomToken(length: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  let token = "";
  for (let i = 0; i < length; i++) token += alphabet[Math.floor(Math.random() * alphabet.length)];
  return token;
}
