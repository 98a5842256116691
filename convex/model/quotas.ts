// Per-customer quotas (issue 11, docs/security.md#per-customer-quotas). A paid checkout that
// would give its customer one instance too many, or one checkout too many in the last 24 hours,
// is refused before anything is provisioned. Reads only the customer's own rows, by index: two
// customers' checkouts never read each other's writes (docs/contention.md).
import type { Doc, Id } from "../_generated/dataModel";
import type { QueryCtx } from "../_generated/server";
import type { Config } from "../lib/config";
import type { CheckoutSummary, InstanceStatus } from "../lib/validators";

export const DAY_MS = 24 * 60 * 60_000;

/** Every status but `deleted`: what MAX_INSTANCES_PER_CUSTOMER counts. */
const HELD: readonly InstanceStatus[] = ["provisioning", "active", "suspended", "deprovisioning", "failed"];

export type QuotaBreach = {
  kind: "instances" | "checkouts";
  limit: number;
  /** Absent: a new customer (only a limit of 0 refuses one). */
  customerId?: Id<"customers">;
  /** For the event's `detail`, the audit and the alert: names the setting, never an address. */
  reason: string;
};

/** The customer a checkout belongs to, found as checkout processing finds it (Stripe id, then email); null: a new one. */
export async function existingCustomer(ctx: QueryCtx, checkout: CheckoutSummary, email: string): Promise<Doc<"customers"> | null> {
  const byStripeId = checkout.stripeCustomerId
    ? await ctx.db
        .query("customers")
        .withIndex("by_stripeCustomerId", (q) => q.eq("stripeCustomerId", checkout.stripeCustomerId))
        .first()
    : null;
  return (
    byStripeId ??
    (await ctx.db
      .query("customers")
      .withIndex("by_email", (q) => q.eq("email", email.trim().toLowerCase()))
      .first())
  );
}

/** The customer's instances that are not deleted, counted up to `cap` (one index range per status). */
async function heldInstances(ctx: QueryCtx, customerId: Id<"customers">, cap: number): Promise<number> {
  let held = 0;
  for (const status of HELD) {
    if (held >= cap) break;
    const rows = await ctx.db
      .query("instances")
      .withIndex("by_customerId_and_status", (q) => q.eq("customerId", customerId).eq("status", status))
      .take(cap - held);
    held += rows.length;
  }
  return held;
}

/**
 * Checkouts of the customer in the rolling 24 hours before `now`, counted up to `cap`. A checkout
 * counts when it created an instance (deleted since, or not): the customer's instances created in
 * the window, read off `by_customerId` (its implicit `_creationTime` suffix) as one range.
 */
async function recentCheckouts(ctx: QueryCtx, customerId: Id<"customers">, now: number, cap: number): Promise<number> {
  const rows = await ctx.db
    .query("instances")
    .withIndex("by_customerId", (q) => q.eq("customerId", customerId).gt("_creationTime", now - DAY_MS))
    .take(cap);
  return rows.length;
}

/**
 * Whether one more instance for this checkout's customer would break a quota: null if not (a new
 * customer never does, unless a limit is 0). Checked before anything is created.
 */
export async function checkoutQuotaBreach(
  ctx: QueryCtx,
  config: Config,
  checkout: CheckoutSummary,
  email: string,
  now: number,
): Promise<QuotaBreach | null> {
  const maxInstances = config.MAX_INSTANCES_PER_CUSTOMER;
  const maxCheckouts = config.MAX_CHECKOUTS_PER_CUSTOMER_PER_DAY;
  const customer = await existingCustomer(ctx, checkout, email);
  if (!customer) {
    // Nothing is held and nothing was bought yet: only a limit of 0 refuses.
    if (maxInstances > 0 && maxCheckouts > 0) return null;
  }
  const customerId = customer?._id;
  const held = customerId ? await heldInstances(ctx, customerId, maxInstances + 1) : 0;
  if (held >= maxInstances) {
    return {
      kind: "instances",
      limit: maxInstances,
      ...(customerId ? { customerId } : {}),
      reason: `over quota: customer ${customerId ?? "(new)"} already holds ${held} instances (MAX_INSTANCES_PER_CUSTOMER=${maxInstances}); nothing was provisioned for session ${checkout.sessionId}`,
    };
  }
  const recent = customerId ? await recentCheckouts(ctx, customerId, now, maxCheckouts + 1) : 0;
  if (recent >= maxCheckouts) {
    return {
      kind: "checkouts",
      limit: maxCheckouts,
      ...(customerId ? { customerId } : {}),
      reason: `over quota: customer ${customerId ?? "(new)"} made ${recent} checkouts in the last 24 hours (MAX_CHECKOUTS_PER_CUSTOMER_PER_DAY=${maxCheckouts}); nothing was provisioned for session ${checkout.sessionId}`,
    };
  }
  return null;
}
