// Live Stripe adapter on the `stripe` SDK (fetch client, SDK retries off). Brain makes
// nothing in Stripe: it reads subscriptions and Checkout Sessions (reconciliation, and the
// current state behind an event) and removes the per-tenant webhook endpoints that earlier
// versions created. Every request takes the provider's budget (sdkCall), one page per call.
import Stripe from "stripe";
import { fail } from "../lib/errors";
import { vSubscriptionStatus, type SubscriptionStatus } from "../lib/validators";
import { errorForStatus, networkError, sdkCall } from "./http";
import { ownedResource } from "./owned";
import {
  hasStatus,
  ProviderError,
  type CheckoutSnapshot,
  type OwnedResource,
  type ProviderEnv,
  type StripeAdapter,
  type StripePage,
  type SubscriptionSnapshot,
} from "./types";

/** Stripe's largest page. */
export const STRIPE_MAX_PAGE = 100;

function classify(error: unknown): ProviderError {
  const e = error as { statusCode?: unknown; code?: string; message?: string; headers?: Record<string, string> };
  if (typeof e?.statusCode === "number") {
    return errorForStatus("stripe", e.statusCode, e.message ?? "no message", {
      code: e.code,
      retryAfter: e.headers?.["retry-after"] ?? null,
    });
  }
  return networkError("stripe", error);
}

const SUBSCRIPTION_STATUSES: ReadonlySet<string> = new Set(vSubscriptionStatus.members.map((member) => member.value));
const SESSION_STATUSES: ReadonlySet<string> = new Set(["open", "complete", "expired"]);
const SESSION_MODES: ReadonlySet<string> = new Set(["payment", "setup", "subscription"]);

/**
 * One of Stripe's documented values, or a permanent failure: a value Brain does not know
 * (a newer API version's) must stop the caller, not be guessed at or stored unchecked.
 */
function known<T extends string>(values: ReadonlySet<string>, value: string | null | undefined, what: string, id: string): T {
  if (typeof value === "string" && values.has(value)) return value as T;
  throw new ProviderError("stripe", "permanent", `${id} has an unknown ${what} ${JSON.stringify(value)}`, undefined, `unknown_${what.replace(/ /g, "_")}`);
}

/** A trimmed, non-empty string, or undefined. */
const clean = (value: string | null | undefined): string | undefined => value?.trim() || undefined;

/** The id of a field Stripe sends as an id or, when expanded, as the object. */
const idOf = (value: string | { id: string } | null | undefined): string | undefined =>
  typeof value === "string" ? value : (value?.id ?? undefined);

/** A page size Stripe accepts (1..100), 100 when not given (or not a number). */
export function pageLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return STRIPE_MAX_PAGE;
  return Math.min(STRIPE_MAX_PAGE, Math.max(1, Math.floor(limit)));
}

/**
 * Stripe's cursor paging over objects already in memory (the sandbox's rows): newest first
 * by `created`, then by id descending; the page after `startingAfter`, placed among all
 * objects, of those `include` keeps. A cursor naming no object is Stripe's 400 resource_missing.
 */
export function pageAfter<T extends { created: number }>(
  items: T[],
  idOf: (item: T) => string,
  startingAfter: string | undefined,
  limit: number | undefined,
  include: (item: T) => boolean = () => true,
): StripePage<T> {
  const ordered = [...items].sort((a, b) => b.created - a.created || (idOf(a) < idOf(b) ? 1 : idOf(a) > idOf(b) ? -1 : 0));
  let start = 0;
  if (startingAfter !== undefined) {
    const at = ordered.findIndex((item) => idOf(item) === startingAfter);
    if (at < 0) {
      throw new ProviderError("stripe", "permanent", `400: No such object: '${startingAfter}'`, undefined, "resource_missing", 400);
    }
    start = at + 1;
  }
  const rest = ordered.slice(start).filter(include);
  const size = pageLimit(limit);
  return { data: rest.slice(0, size), hasMore: rest.length > size };
}

/** The plan a Checkout Session's metadata names: lower case, trimmed, at most 64 characters. */
export function planOf(plan: string | null | undefined): string | undefined {
  return clean(plan)?.toLowerCase().slice(0, 64);
}

/** Plain fields of a subscription, whichever way they were read (the SDK, the sandbox's rows). */
export type SubscriptionFields = {
  id: string;
  customerId?: string | null;
  status: string | null | undefined;
  priceId?: string | null;
  instanceId?: string | null;
  /** unix seconds, as Stripe sends it */
  created: number;
};

/** A SubscriptionSnapshot with absent fields left out; an unknown status is a permanent ProviderError. */
export function subscriptionSnapshot(fields: SubscriptionFields): SubscriptionSnapshot {
  const status = known<SubscriptionStatus>(SUBSCRIPTION_STATUSES, fields.status, "subscription status", fields.id);
  const customerId = clean(fields.customerId);
  const priceId = clean(fields.priceId);
  const instanceId = clean(fields.instanceId);
  return {
    subscriptionId: fields.id,
    ...(customerId ? { customerId } : {}),
    status,
    ...(priceId ? { priceId } : {}),
    ...(instanceId ? { instanceId } : {}),
    created: fields.created * 1000,
  };
}

/** Plain fields of a Checkout Session, whichever way they were read. */
export type CheckoutFields = {
  id: string;
  paymentStatus: string;
  customerId?: string | null;
  email?: string | null;
  name?: string | null;
  plan?: string | null;
  subscriptionId?: string | null;
  status: string | null | undefined;
  mode: string | null | undefined;
  /** unix seconds, as Stripe sends it */
  created: number;
};

/** A CheckoutSnapshot with absent fields left out; an unknown status or mode is a permanent ProviderError. */
export function checkoutSnapshot(fields: CheckoutFields): CheckoutSnapshot {
  const status = known<CheckoutSnapshot["status"]>(SESSION_STATUSES, fields.status, "session status", fields.id);
  const mode = known<CheckoutSnapshot["mode"]>(SESSION_MODES, fields.mode, "session mode", fields.id);
  const stripeCustomerId = clean(fields.customerId);
  const email = clean(fields.email);
  const name = clean(fields.name);
  const plan = planOf(fields.plan);
  const subscriptionId = clean(fields.subscriptionId);
  return {
    sessionId: fields.id,
    paymentStatus: fields.paymentStatus,
    ...(stripeCustomerId ? { stripeCustomerId } : {}),
    ...(email ? { email } : {}),
    ...(name ? { name } : {}),
    ...(plan ? { plan } : {}),
    ...(subscriptionId ? { subscriptionId } : {}),
    status,
    mode,
    created: fields.created * 1000,
  };
}

const seconds = (value: string | undefined) => Number(value) || 0;

/**
 * A subscription kept as string attributes (the sandbox's rows, see sandbox.seedStripe):
 * status, customerId, priceId, instanceId, created (unix seconds).
 */
export function subscriptionFromAttributes(id: string, a: Record<string, string>): SubscriptionSnapshot {
  return subscriptionSnapshot({
    id,
    customerId: a.customerId,
    status: a.status,
    priceId: a.priceId,
    instanceId: a.instanceId,
    created: seconds(a.created),
  });
}

/**
 * A Checkout Session kept as string attributes: sessionStatus (default complete), paymentStatus
 * (default paid), mode (default subscription), customerId, email, name, plan, subscriptionId, created.
 */
export function checkoutFromAttributes(id: string, a: Record<string, string>): CheckoutSnapshot {
  return checkoutSnapshot({
    id,
    paymentStatus: a.paymentStatus ?? "paid",
    customerId: a.customerId,
    email: a.email,
    name: a.name,
    plan: a.plan,
    subscriptionId: a.subscriptionId,
    status: a.sessionStatus ?? "complete",
    mode: a.mode ?? "subscription",
    created: seconds(a.created),
  });
}

function fromSubscription(sub: Stripe.Subscription): SubscriptionSnapshot {
  return subscriptionSnapshot({
    id: sub.id,
    customerId: idOf(sub.customer),
    status: sub.status,
    priceId: sub.items?.data?.[0]?.price?.id,
    instanceId: sub.metadata?.instanceId,
    created: sub.created,
  });
}

function fromSession(session: Stripe.Checkout.Session): CheckoutSnapshot {
  return checkoutSnapshot({
    id: session.id,
    paymentStatus: session.payment_status,
    customerId: idOf(session.customer),
    email: clean(session.customer_details?.email) ?? session.customer_email,
    name: session.customer_details?.name,
    plan: session.metadata?.plan,
    subscriptionId: idOf(session.subscription),
    status: session.status,
    mode: session.mode,
    created: session.created,
  });
}

export function liveStripe(env: ProviderEnv): StripeAdapter {
  const { config } = env;
  const key = config.STRIPE_SECRET_KEY ?? fail("CONFIG_INVALID", "STRIPE_SECRET_KEY is not set");
  const url = new URL(config.STRIPE_API_URL);
  // A client per call, on that call's traced fetch (constructing one is cheap: no I/O).
  const clientWith = (fetch: typeof globalThis.fetch) =>
    new Stripe(key, {
      httpClient: Stripe.createFetchHttpClient(fetch),
      host: url.hostname,
      protocol: url.protocol === "https:" ? "https" : "http",
      ...(url.port ? { port: Number(url.port) } : {}),
      maxNetworkRetries: 0,
      timeout: config.PROVIDER_TIMEOUT_MS,
    });
  const call = <T>(operation: string, run: (stripe: Stripe) => Promise<T>) =>
    sdkCall(env, "stripe", operation, (fetch) => run(clientWith(fetch as typeof globalThis.fetch)), classify);
  const managedBy = config.RESOURCE_PREFIX;
  const cursor = (startingAfter: string | undefined) => (startingAfter ? { starting_after: startingAfter } : {});

  return {
    async listSubscriptions({ startingAfter, limit }) {
      const page = await call("listSubscriptions", (stripe) =>
        stripe.subscriptions.list({ status: "all", limit: pageLimit(limit), ...cursor(startingAfter) }),
      );
      return { data: page.data.map(fromSubscription), hasMore: page.has_more };
    },

    async retrieveSubscription({ subscriptionId }) {
      try {
        return fromSubscription(await call("retrieveSubscription", (stripe) => stripe.subscriptions.retrieve(subscriptionId)));
      } catch (error) {
        if (hasStatus(error, 404)) return null;
        throw error;
      }
    },

    async listCheckoutSessions({ createdAfter, startingAfter, limit }) {
      const page = await call("listCheckoutSessions", (stripe) =>
        stripe.checkout.sessions.list({
          status: "complete",
          created: { gte: Math.floor(createdAfter) },
          limit: pageLimit(limit),
          ...cursor(startingAfter),
        }),
      );
      return { data: page.data.map(fromSession), hasMore: page.has_more };
    },

    async listWebhookEndpoints(): Promise<OwnedResource[]> {
      const owned: OwnedResource[] = [];
      let startingAfter: string | undefined;
      for (let page = 0; page < 1000; page++) {
        const list = await call("listWebhookEndpoints", (stripe) =>
          stripe.webhookEndpoints.list({ limit: STRIPE_MAX_PAGE, ...cursor(startingAfter) }),
        );
        for (const endpoint of list.data) {
          if (endpoint.metadata?.managedBy === managedBy) {
            owned.push(ownedResource(endpoint.id, endpoint.url, endpoint.metadata?.instanceId));
          }
        }
        if (!list.has_more || list.data.length === 0) break;
        startingAfter = list.data[list.data.length - 1].id;
      }
      return owned;
    },

    async deleteWebhookEndpoint({ endpointId }) {
      try {
        await call("deleteWebhookEndpoint", (stripe) => stripe.webhookEndpoints.del(endpointId));
      } catch (error) {
        if (!hasStatus(error, 404)) throw error; // already gone is success
      }
    },
  };
}
