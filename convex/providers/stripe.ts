// Live Stripe adapter on the `stripe` SDK (fetch client, SDK retries off). Each tenant
// deployment gets one webhook endpoint, tagged with managedBy/instanceId metadata. Its
// signing secret is returned only on create, so create carries an idempotency key: a
// retry after a lost response replays the original answer, secret included.
import Stripe from "stripe";
import { sha256Hex } from "../lib/crypto";
import { fail } from "../lib/errors";
import { errorForStatus, networkError, sdkCall } from "./http";
import { ownedResource } from "./owned";
import { hasStatus, ProviderError, type OwnedResource, type ProviderEnv, type StripeAdapter } from "./types";

/** The events a tenant deployment handles itself (its own subscriptions and invoices). */
export const TENANT_WEBHOOK_EVENTS: Stripe.WebhookEndpointCreateParams.EnabledEvent[] = [
  "checkout.session.completed",
  "customer.subscription.created",
  "customer.subscription.updated",
  "customer.subscription.deleted",
  "invoice.paid",
  "invoice.payment_failed",
];

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

/**
 * Whether Stripe answered with an idempotent replay. With the fetch client, `lastResponse`
 * is the fetch Response and its headers a Headers object (not the plain object the SDK's
 * types describe), so read the header either way.
 */
function wasReplayed(response: { lastResponse?: { headers?: unknown } }): boolean {
  const headers = response.lastResponse?.headers as { get?: unknown } | Record<string, string> | undefined;
  const value =
    typeof headers?.get === "function"
      ? (headers as Headers).get("idempotent-replayed")
      : (headers as Record<string, string> | undefined)?.["idempotent-replayed"];
  return value === "true";
}

export function liveStripe(env: ProviderEnv): StripeAdapter {
  const { config } = env;
  const key = config.STRIPE_SECRET_KEY ?? fail("CONFIG_INVALID", "STRIPE_SECRET_KEY is not set");
  const url = new URL(config.STRIPE_API_URL);
  const stripe = new Stripe(key, {
    httpClient: Stripe.createFetchHttpClient(),
    host: url.hostname,
    protocol: url.protocol === "https:" ? "https" : "http",
    ...(url.port ? { port: Number(url.port) } : {}),
    maxNetworkRetries: 0,
    timeout: config.PROVIDER_TIMEOUT_MS,
  });
  const call = <T>(operation: string, run: () => Promise<T>) => sdkCall(env, "stripe", operation, run, classify);
  const managedBy = config.RESOURCE_PREFIX;

  const create = (instanceId: string, url: string, idempotencyKey: string) =>
    call("createWebhookEndpoint", () =>
      stripe.webhookEndpoints.create(
        {
          url,
          enabled_events: TENANT_WEBHOOK_EVENTS,
          description: `Brain tenant ${instanceId}`,
          metadata: { managedBy, instanceId },
        },
        { idempotencyKey },
      ),
    );

  async function stillExists(endpointId: string): Promise<boolean> {
    try {
      await call("retrieveWebhookEndpoint", () => stripe.webhookEndpoints.retrieve(endpointId));
      return true;
    } catch (error) {
      if (hasStatus(error, 404)) return false;
      throw error;
    }
  }

  /** Brain's endpoints (metadata managedBy) that match, across every page. */
  async function endpointsOf(match: (endpoint: Stripe.WebhookEndpoint) => boolean): Promise<Stripe.WebhookEndpoint[]> {
    const found: Stripe.WebhookEndpoint[] = [];
    let startingAfter: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const list = await call("listWebhookEndpoints", () =>
        stripe.webhookEndpoints.list({ limit: 100, ...(startingAfter ? { starting_after: startingAfter } : {}) }),
      );
      found.push(...list.data.filter((endpoint) => endpoint.metadata?.managedBy === managedBy && match(endpoint)));
      if (!list.has_more || list.data.length === 0) break;
      startingAfter = list.data[list.data.length - 1].id;
    }
    return found;
  }

  async function deleteEndpoint(endpointId: string): Promise<void> {
    try {
      await call("deleteWebhookEndpoint", () => stripe.webhookEndpoints.del(endpointId));
    } catch (error) {
      if (!hasStatus(error, 404)) throw error; // already gone is success
    }
  }

  return {
    async ensureWebhookEndpoint({ instanceId, url }) {
      // The key names the URL too: after a cleanup the retry makes a new deployment (a new
      // URL), and Stripe refuses a key reused with other parameters.
      const key = `brain-webhook-endpoint-${instanceId}-${(await sha256Hex(url)).slice(0, 16)}`;
      let endpoint = await create(instanceId, url, key);
      // A replay of an earlier create may name an endpoint deleted since (compensation, an
      // operator). Then create again, keyed by the deleted endpoint, so a lost response of
      // that create replays too; follow the chain if that one is gone as well.
      for (let hop = 0; wasReplayed(endpoint) && !(await stillExists(endpoint.id)); hop++) {
        if (hop >= 10) throw new ProviderError("stripe", "permanent", `too many deleted endpoints for ${instanceId}`);
        endpoint = await create(instanceId, url, `${key}-after-${endpoint.id}`);
      }
      if (!endpoint.secret) throw new ProviderError("stripe", "permanent", `endpoint ${endpoint.id} came without a secret`);
      // Any other endpoint tagged with this instance is an earlier create whose answer (and
      // secret) Brain never got, past the idempotency key's 24 hours: remove it, so one remains.
      for (const stale of await endpointsOf((e) => e.metadata?.instanceId === instanceId && e.id !== endpoint.id)) {
        await deleteEndpoint(stale.id);
      }
      return { endpointId: endpoint.id, secret: endpoint.secret };
    },

    async probeWebhookEndpoint({ endpointId }) {
      try {
        const endpoint = await call("retrieveWebhookEndpoint", () => stripe.webhookEndpoints.retrieve(endpointId));
        return endpoint.status === "enabled"
          ? { ok: true, detail: `Stripe webhook endpoint ${endpointId} is enabled` }
          : { ok: false, detail: `Stripe webhook endpoint ${endpointId} is ${endpoint.status}` };
      } catch (error) {
        if (hasStatus(error, 404)) return { ok: false, detail: `Stripe webhook endpoint ${endpointId} not found` };
        throw error;
      }
    },

    async listWebhookEndpoints(): Promise<OwnedResource[]> {
      return (await endpointsOf(() => true)).map((endpoint) =>
        ownedResource(endpoint.id, endpoint.url, endpoint.metadata?.instanceId),
      );
    },

    deleteWebhookEndpoint: ({ endpointId }) => deleteEndpoint(endpointId),
  };
}
