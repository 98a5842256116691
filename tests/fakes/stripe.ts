// Fake Stripe API for tests: /v1/webhook_endpoints, /v1/subscriptions and
// /v1/checkout/sessions, speaking Stripe's wire format (form-encoded bracket-notation
// requests, JSON answers, `{error: {...}}` bodies, Idempotency-Key replays, cursor lists,
// newest first) on top of startFakeServer. State is in memory; tests put subscriptions and
// sessions in with addSubscription / addCheckoutSession. It must never call the real Stripe,
// and never return an endpoint's `secret` anywhere but the create answer (and its replays).
import { randomBytes } from "node:crypto";
import { startFakeServer, type FakeRequest, type FakeResponse, type FakeServer, type Route } from "./base";
import { createIdempotencyStore } from "./idempotency";

export type WebhookEndpointRecord = {
  id: string;
  object: "webhook_endpoint";
  api_version: string | null;
  application: string | null;
  created: number;
  description: string | null;
  enabled_events: string[];
  livemode: boolean;
  metadata: Record<string, string>;
  secret: string;
  status: "enabled" | "disabled";
  url: string;
};

/** Stripe's subscription statuses; any other string can be set to test how a client copes. */
export type SubscriptionWireStatus =
  | "incomplete"
  | "incomplete_expired"
  | "trialing"
  | "active"
  | "past_due"
  | "canceled"
  | "unpaid"
  | "paused"
  | (string & {});

export type SubscriptionRecord = {
  id: string;
  object: "subscription";
  cancel_at_period_end: boolean;
  canceled_at: number | null;
  created: number;
  currency: string;
  customer: string;
  ended_at: number | null;
  items: {
    object: "list";
    data: { id: string; object: "subscription_item"; created: number; price: { id: string; object: "price" }; quantity: number; subscription: string }[];
    has_more: boolean;
    url: string;
  };
  livemode: boolean;
  metadata: Record<string, string>;
  start_date: number;
  status: SubscriptionWireStatus;
};

export type CheckoutSessionRecord = {
  id: string;
  object: "checkout.session";
  client_reference_id: string | null;
  created: number;
  currency: string | null;
  customer: string | null;
  customer_details: { email: string | null; name: string | null; phone: string | null; tax_exempt: "none" } | null;
  customer_email: string | null;
  expires_at: number;
  livemode: boolean;
  metadata: Record<string, string>;
  mode: "payment" | "setup" | "subscription" | (string & {});
  payment_status: "paid" | "unpaid" | "no_payment_required";
  status: "open" | "complete" | "expired" | (string & {}) | null;
  subscription: string | null;
  url: string | null;
};

/** What addSubscription takes: any wire field, plus `priceId` for the first item's price. */
export type SubscriptionInit = Partial<SubscriptionRecord> & { priceId?: string };

export type StripeFake = FakeServer & {
  endpoints(): WebhookEndpointRecord[];
  /** Delete an endpoint as if someone removed it in the dashboard. */
  deleteEndpointOutOfBand(id: string): void;
  /**
   * Puts a subscription in the account, as a checkout would have; returns its wire object.
   * Defaults: a new `sub_` id, a new customer, status active, one item on `price_fake_pro`,
   * created now (unix seconds). Ids must be unique.
   */
  addSubscription(init?: SubscriptionInit): SubscriptionRecord;
  /** Changes a subscription's status as Stripe would (canceled sets canceled_at and ended_at). */
  setSubscriptionStatus(id: string, status: SubscriptionWireStatus): SubscriptionRecord;
  subscriptions(): SubscriptionRecord[];
  /**
   * Puts a Checkout Session in the account; returns its wire object. Defaults: a new `cs_test_`
   * id, mode subscription, status complete, paid, a new customer with an example.com email,
   * no subscription (pass one from addSubscription), created now (unix seconds).
   */
  addCheckoutSession(init?: Partial<CheckoutSessionRecord>): CheckoutSessionRecord;
  checkoutSessions(): CheckoutSessionRecord[];
  /** Requests received per `METHOD /path` (query left out), e.g. `"GET /v1/subscriptions"`. */
  requestCounts(): Record<string, number>;
};

/** Stripe's parameters: strings, arrays (`a[0]=`) and hashes (`a[b]=`), nested. */
export type StripeParams = { [key: string]: StripeParam };
export type StripeParam = string | StripeParam[] | StripeParams;

const isParams = (value: unknown): value is StripeParams =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** Parse form or query pairs in bracket notation (`metadata[a]=1&events[0]=x&events[]=y`) into nested params. */
export function parseStripeParams(pairs: Iterable<[string, string]>): StripeParams {
  const root: StripeParams = {};
  for (const [key, value] of pairs) {
    const match = /^([^[\]]+)((?:\[[^\]]*\])*)$/.exec(key);
    const path = match ? [match[1], ...[...match[2].matchAll(/\[([^\]]*)\]/g)].map((m) => m[1])] : [key];
    let node = root;
    path.forEach((segment, i) => {
      const name = segment === "" ? String(Object.keys(node).length) : segment;
      if (i === path.length - 1) node[name] = value;
      else {
        if (!isParams(node[name])) node[name] = {};
        node = node[name] as StripeParams;
      }
    });
  }
  const arrays = (value: StripeParam): StripeParam => {
    if (!isParams(value)) return value;
    const keys = Object.keys(value);
    const converted = Object.fromEntries(keys.map((k) => [k, arrays(value[k])]));
    return keys.length > 0 && keys.every((k, i) => k === String(i)) ? keys.map((k) => converted[k]) : converted;
  };
  return arrays(root) as StripeParams;
}

const ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const randomToken = (length: number) => [...randomBytes(length)].map((b) => ALPHANUMERIC[b % 62]).join("");
const EVENT_TYPE = /^(\*|[a-z0-9_]+(\.[a-z0-9_]+)+)$/;
const SUBSCRIPTION_LIST_STATUSES = new Set([
  "active", "all", "canceled", "ended", "incomplete", "incomplete_expired", "past_due", "paused", "trialing", "unpaid",
]);
const SESSION_STATUSES = new Set(["open", "complete", "expired"]);
const now = () => Math.floor(Date.now() / 1000);

type StripeError = { type: string; message: string; code?: string; param?: string; doc_url?: string };
const stripeError = (status: number, error: StripeError): FakeResponse => ({
  status,
  body: { error: error.code ? { ...error, doc_url: `https://stripe.com/docs/error-codes/${error.code.replace(/_/g, "-")}` } : error },
});
const invalid = (message: string, extra: Omit<StripeError, "type" | "message"> = {}) =>
  stripeError(400, { type: "invalid_request_error", message, ...extra });
const missing = (id: string, what = "webhook endpoint") =>
  stripeError(404, { type: "invalid_request_error", code: "resource_missing", param: "id", message: `No such ${what}: '${id}'` });

/** `limit` as Stripe checks it: an integer 1..100, 10 when absent. */
function limitOf(params: StripeParams): number | FakeResponse {
  const text = params.limit ?? "10";
  const limit = typeof text === "string" && /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(limit)) return invalid(`Invalid integer: ${String(text)}`, { code: "parameter_invalid_integer", param: "limit" });
  if (limit < 1 || limit > 100) {
    return invalid(`This value must be ${limit < 1 ? "greater than or equal to 1" : "less than or equal to 100"} (it currently is '${limit}').`, {
      code: "parameter_invalid_integer",
      param: "limit",
    });
  }
  return limit;
}

/**
 * One page of a Stripe list. `items` are the objects that pass the list's filters, newest
 * first; `rankOf` places any id ever issued in that order (lower is newer), so a cursor
 * naming an object the filters leave out, or one deleted since, still pages on.
 */
function listPage<T extends { id: string }>(
  params: StripeParams,
  items: T[],
  rankOf: (id: string) => number | undefined,
  what: string,
  url: string,
): FakeResponse {
  const limit = limitOf(params);
  if (typeof limit !== "number") return limit;
  const { starting_after: after, ending_before: before } = params;
  if (after !== undefined && before !== undefined) {
    return invalid("You may only specify one of these parameters: ending_before, starting_after.");
  }
  for (const [param, cursor] of [["starting_after", after], ["ending_before", before]] as const) {
    if (cursor !== undefined && (typeof cursor !== "string" || rankOf(cursor) === undefined)) {
      return stripeError(400, { type: "invalid_request_error", code: "resource_missing", param, message: `No such ${what}: '${String(cursor)}'` });
    }
  }
  let data: T[];
  let hasMore: boolean;
  if (typeof before === "string") {
    const newer = items.filter((item) => rankOf(item.id)! < rankOf(before)!);
    data = newer.slice(-limit);
    hasMore = newer.length > limit;
  } else {
    const older = typeof after === "string" ? items.filter((item) => rankOf(item.id)! > rankOf(after)!) : items;
    data = older.slice(0, limit);
    hasMore = older.length > limit;
  }
  return { status: 200, body: { object: "list", data, has_more: hasMore, url } };
}

/** A `created` filter: an exact unix time, or a hash of gt / gte / lt / lte. */
function createdFilter(created: StripeParam | undefined): ((at: number) => boolean) | FakeResponse {
  if (created === undefined) return () => true;
  const integer = (value: StripeParam, param: string) =>
    typeof value === "string" && /^\d+$/.test(value)
      ? Number(value)
      : invalid(`Invalid integer: ${String(value)}`, { code: "parameter_invalid_integer", param });
  if (!isParams(created)) {
    const exact = integer(created, "created");
    return typeof exact === "number" ? (at) => at === exact : exact;
  }
  const bounds: [string, (at: number, bound: number) => boolean][] = [
    ["gt", (at, b) => at > b],
    ["gte", (at, b) => at >= b],
    ["lt", (at, b) => at < b],
    ["lte", (at, b) => at <= b],
  ];
  const unknown = Object.keys(created).find((key) => !bounds.some(([name]) => name === key));
  if (unknown) return invalid(`Received unknown parameter: created[${unknown}]`, { code: "parameter_unknown", param: `created[${unknown}]` });
  const tests: ((at: number) => boolean)[] = [];
  for (const [name, test] of bounds) {
    if (created[name] === undefined) continue;
    const bound = integer(created[name], `created[${name}]`);
    if (typeof bound !== "number") return bound;
    tests.push((at) => test(at, bound));
  }
  return (at) => tests.every((test) => test(at));
}

function unknownParam(params: StripeParams, allowed: string[]): FakeResponse | null {
  const unknown = Object.keys(params).find((k) => !allowed.includes(k));
  return unknown ? invalid(`Received unknown parameter: ${unknown}`, { code: "parameter_unknown", param: unknown }) : null;
}

function urlError(url: StripeParam, livemode: boolean): FakeResponse | null {
  let parsed: URL | null = null;
  try {
    parsed = typeof url === "string" ? new URL(url) : null;
  } catch {
    parsed = null;
  }
  const ok = parsed && (parsed.protocol === "https:" || (!livemode && parsed.protocol === "http:"));
  return ok ? null : invalid(`Invalid URL: ${String(url)}`, { code: "url_invalid", param: "url" });
}

function eventsError(events: StripeParam): FakeResponse | null {
  if (!Array.isArray(events)) return invalid("Invalid array", { param: "enabled_events" });
  const bad = events.findIndex((e) => typeof e !== "string" || !EVENT_TYPE.test(e));
  if (bad >= 0) {
    return invalid(`Invalid enabled_events[${bad}]: must be '*' or a valid event type`, { param: `enabled_events[${bad}]` });
  }
  return null;
}

function metadataError(metadata: StripeParam | undefined): FakeResponse | null {
  if (metadata === undefined || metadata === "") return null;
  if (!isParams(metadata)) return invalid("Invalid hash", { param: "metadata" });
  const entries = Object.entries(metadata);
  if (entries.length > 50) return invalid("Metadata can have at most 50 keys", { param: "metadata" });
  for (const [key, value] of entries) {
    if (typeof value !== "string") return invalid(`Invalid metadata[${key}]: must be a string`, { param: `metadata[${key}]` });
    if (key.length > 40) return invalid("Metadata keys can be at most 40 characters", { param: `metadata[${key}]` });
    if (value.length > 500) return invalid("Metadata values can be at most 500 characters", { param: `metadata[${key}]` });
  }
  return null;
}

/** Stripe's metadata update rules: `metadata[k]=` unsets k, `metadata=` unsets everything. */
function mergeMetadata(current: Record<string, string>, update: StripeParam | undefined): Record<string, string> {
  if (update === undefined) return current;
  if (update === "" || !isParams(update)) return {};
  const next = { ...current };
  for (const [key, value] of Object.entries(update)) {
    if (value === "") delete next[key];
    else next[key] = value as string;
  }
  return next;
}

function maskKey(key: string): string {
  const prefix = /^(sk|rk|pk)_(test|live)_/.exec(key)?.[0] ?? "";
  return `${prefix}${"*".repeat(Math.max(4, key.length - prefix.length - 4))}${key.slice(-4)}`;
}

export async function startStripeFake(options: { secretKey: string; maxEndpoints?: number }): Promise<StripeFake> {
  const endpoints = new Map<string, WebhookEndpointRecord>();
  // Every id ever issued keeps its position, so a cursor naming a since-deleted endpoint still pages on.
  const position = new Map<string, number>();
  const idempotency = createIdempotencyStore();
  const livemode = options.secretKey.startsWith("sk_live_");
  const maxEndpoints = options.maxEndpoints ?? 16;
  const subscriptions = new Map<string, SubscriptionRecord>();
  const sessions = new Map<string, CheckoutSessionRecord>();

  const publicView = (endpoint: WebhookEndpointRecord) => {
    const { secret: _secret, ...rest } = endpoint;
    void _secret;
    return rest;
  };

  function createEndpoint(params: StripeParams): FakeResponse {
    const unknown = unknownParam(params, ["url", "enabled_events", "description", "metadata", "api_version", "connect", "expand"]);
    if (unknown) return unknown;
    for (const field of ["url", "enabled_events"] as const) {
      if (params[field] === undefined || params[field] === "") {
        return invalid(`Missing required param: ${field}.`, { code: "parameter_missing", param: field });
      }
    }
    const problem = urlError(params.url, livemode) ?? eventsError(params.enabled_events) ?? metadataError(params.metadata);
    if (problem) return problem;
    if (endpoints.size >= maxEndpoints) {
      return invalid(`You have reached the maximum of ${maxEndpoints} ${livemode ? "live" : "test"} webhook endpoints.`);
    }
    const endpoint: WebhookEndpointRecord = {
      id: `we_${randomToken(24)}`,
      object: "webhook_endpoint",
      api_version: typeof params.api_version === "string" ? params.api_version : null,
      application: null,
      created: Math.floor(Date.now() / 1000),
      description: typeof params.description === "string" && params.description !== "" ? params.description : null,
      enabled_events: params.enabled_events as string[],
      livemode,
      metadata: mergeMetadata({}, params.metadata),
      secret: `whsec_${randomToken(32)}`,
      status: "enabled",
      url: params.url as string,
    };
    endpoints.set(endpoint.id, endpoint);
    position.set(endpoint.id, position.size);
    return { status: 200, body: endpoint };
  }

  function updateEndpoint(id: string, params: StripeParams): FakeResponse {
    const unknown = unknownParam(params, ["url", "enabled_events", "description", "metadata", "disabled", "expand"]);
    if (unknown) return unknown;
    const endpoint = endpoints.get(id);
    if (!endpoint) return missing(id);
    const problem =
      (params.url !== undefined ? urlError(params.url, livemode) : null) ??
      (params.enabled_events !== undefined ? eventsError(params.enabled_events) : null) ??
      metadataError(params.metadata);
    if (problem) return problem;
    if (params.disabled !== undefined && params.disabled !== "true" && params.disabled !== "false") {
      return invalid(`Invalid boolean: ${String(params.disabled)}`, { param: "disabled" });
    }
    if (params.url !== undefined) endpoint.url = params.url as string;
    if (params.enabled_events !== undefined) endpoint.enabled_events = params.enabled_events as string[];
    if (params.description !== undefined) endpoint.description = params.description === "" ? null : (params.description as string);
    if (params.disabled !== undefined) endpoint.status = params.disabled === "true" ? "disabled" : "enabled";
    endpoint.metadata = mergeMetadata(endpoint.metadata, params.metadata);
    return { status: 200, body: publicView(endpoint) };
  }

  function listEndpoints(params: StripeParams): FakeResponse {
    const unknown = unknownParam(params, ["limit", "starting_after", "ending_before", "expand"]);
    if (unknown) return unknown;
    const newestFirst = [...endpoints.values()].sort((a, b) => position.get(b.id)! - position.get(a.id)!);
    const rankOf = (id: string) => (position.has(id) ? -position.get(id)! : undefined);
    const answer = listPage(params, newestFirst, rankOf, "webhook endpoint", "/v1/webhook_endpoints");
    if (answer.status !== 200) return answer;
    const body = answer.body as { data: WebhookEndpointRecord[] };
    return { ...answer, body: { ...body, data: body.data.map(publicView) } };
  }

  // Subscriptions and sessions are never deleted (Stripe keeps them), so a rank is simply the
  // place in the newest-first order: created descending, the later added first within a second.
  const added = new Map<string, number>();
  const newestFirst = <T extends { id: string; created: number }>(items: Iterable<T>) =>
    [...items].sort((a, b) => b.created - a.created || added.get(b.id)! - added.get(a.id)!);
  const ranks = <T extends { id: string }>(ordered: T[]) => {
    const rank = new Map(ordered.map((item, i) => [item.id, i]));
    return (id: string) => rank.get(id);
  };

  function listSubscriptions(params: StripeParams): FakeResponse {
    const unknown = unknownParam(params, ["limit", "starting_after", "ending_before", "expand", "status", "customer", "price", "created"]);
    if (unknown) return unknown;
    const status = params.status;
    if (status !== undefined && (typeof status !== "string" || !SUBSCRIPTION_LIST_STATUSES.has(status))) {
      return invalid(`Invalid status: must be one of ${[...SUBSCRIPTION_LIST_STATUSES].join(", ")}`, { param: "status" });
    }
    const created = createdFilter(params.created);
    if (typeof created !== "function") return created;
    // No status: every subscription but the canceled ones; `ended`: canceled and incomplete_expired.
    const statusMatches = (s: SubscriptionRecord) =>
      status === "all" ||
      (status === undefined && s.status !== "canceled") ||
      (status === "ended" && (s.status === "canceled" || s.status === "incomplete_expired")) ||
      s.status === status;
    const all = newestFirst(subscriptions.values());
    const items = all.filter(
      (s) =>
        statusMatches(s) &&
        created(s.created) &&
        (params.customer === undefined || s.customer === params.customer) &&
        (params.price === undefined || s.items.data.some((item) => item.price.id === params.price)),
    );
    return listPage(params, items, ranks(all), "subscription", "/v1/subscriptions");
  }

  function listSessions(params: StripeParams): FakeResponse {
    const unknown = unknownParam(params, ["limit", "starting_after", "ending_before", "expand", "status", "customer", "subscription", "created"]);
    if (unknown) return unknown;
    const status = params.status;
    if (status !== undefined && (typeof status !== "string" || !SESSION_STATUSES.has(status))) {
      return invalid(`Invalid status: must be one of ${[...SESSION_STATUSES].join(", ")}`, { param: "status" });
    }
    const created = createdFilter(params.created);
    if (typeof created !== "function") return created;
    const all = newestFirst(sessions.values());
    const items = all.filter(
      (s) =>
        (status === undefined || s.status === status) &&
        created(s.created) &&
        (params.customer === undefined || s.customer === params.customer) &&
        (params.subscription === undefined || s.subscription === params.subscription),
    );
    return listPage(params, items, ranks(all), "checkout.session", "/v1/checkout/sessions");
  }

  function deleteEndpoint(id: string): FakeResponse {
    if (!endpoints.delete(id)) return missing(id);
    return { status: 200, body: { id, object: "webhook_endpoint", deleted: true } };
  }

  /** Stripe's Idempotency-Key rules for POST: replay the saved answer, refuse a key reused for something else. */
  function idempotent(request: FakeRequest, params: StripeParams, handle: () => FakeResponse): FakeResponse {
    const requestId = `req_${randomToken(14)}`;
    const key = request.headers["idempotency-key"];
    if (request.method !== "POST" || key === undefined) return { ...handle(), headers: { "request-id": requestId } };
    if (key.length > 255) {
      return invalid(`Invalid idempotency key: keys can be at most 255 characters (this one is ${key.length}).`, { param: "Idempotency-Key" });
    }
    const scope = `${request.method} ${request.path}`;
    const seen = idempotency.lookup(key, scope, params);
    if (seen.kind === "replay") {
      const original = seen.response.headers?.["request-id"] ?? "";
      return { ...seen.response, headers: { ...seen.response.headers, "request-id": requestId, "original-request": original, "idempotent-replayed": "true" } };
    }
    if (seen.kind === "mismatch") {
      const message =
        seen.scope !== seen.requested
          ? `Keys for idempotent requests can only be used for the same endpoint they were first used for ('${seen.scope}'). Try using a key other than '${key}' if you meant to execute a different request.`
          : `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`;
      return stripeError(400, { type: "idempotency_error", message });
    }
    const answer = handle();
    const response = { ...answer, headers: { "request-id": requestId, "idempotency-key": key, "original-request": requestId } };
    // Stripe saves an answer once the endpoint has started executing; parameter errors (400) are not saved.
    if (answer.status !== 400) idempotency.remember(key, scope, params, response);
    return response;
  }

  const paramsOf = (request: FakeRequest) =>
    parseStripeParams(request.method === "GET" || request.method === "DELETE" ? request.query : new URLSearchParams(request.rawBody));

  const route = (method: string, path: string, act: (params: StripeParams, id: string) => FakeResponse): Route => ({
    method,
    path,
    handler: (request) => {
      const key = apiKeyOf(request.headers.authorization);
      if (key === null) {
        return invalidAuth(
          "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.",
        );
      }
      if (key !== options.secretKey) return invalidAuth(`Invalid API Key provided: ${maskKey(key)}`);
      const params = paramsOf(request);
      const answer = idempotent(request, params, () => act(params, request.params.id));
      return { ...answer, body: structuredClone(answer.body) };
    },
  });

  const server = await startFakeServer({
    name: "stripe",
    prefix: "/v1",
    routes: [
      route("POST", "/webhook_endpoints", (params) => createEndpoint(params)),
      route("GET", "/webhook_endpoints", (params) => listEndpoints(params)),
      route("GET", "/webhook_endpoints/:id", (_params, id) => {
        const endpoint = endpoints.get(id);
        return endpoint ? { status: 200, body: publicView(endpoint) } : missing(id);
      }),
      route("POST", "/webhook_endpoints/:id", (params, id) => updateEndpoint(id, params)),
      route("DELETE", "/webhook_endpoints/:id", (_params, id) => deleteEndpoint(id)),
      route("GET", "/subscriptions", (params) => listSubscriptions(params)),
      route("GET", "/subscriptions/:id", (_params, id) => {
        const subscription = subscriptions.get(id);
        return subscription ? { status: 200, body: subscription } : missing(id, "subscription");
      }),
      route("GET", "/checkout/sessions", (params) => listSessions(params)),
      route("GET", "/checkout/sessions/:id", (_params, id) => {
        const session = sessions.get(id);
        return session ? { status: 200, body: session } : missing(id, "checkout.session");
      }),
    ],
    errorBody: (status, message) => ({
      error: {
        type: status >= 500 ? "api_error" : "invalid_request_error",
        ...(status === 429 ? { code: "rate_limit" } : {}),
        message,
      },
    }),
  });

  const unique = (id: string, map: Map<string, unknown>) => {
    if (map.has(id)) throw new Error(`stripe fake: ${id} exists already`);
    added.set(id, added.size);
    return id;
  };

  return Object.assign(server, {
    endpoints: () => [...endpoints.values()].map((e) => structuredClone(e)),
    deleteEndpointOutOfBand(id: string) {
      if (!endpoints.delete(id)) throw new Error(`stripe fake: no webhook endpoint ${id}`);
    },

    addSubscription(init: SubscriptionInit = {}): SubscriptionRecord {
      const { priceId, ...fields } = init;
      const id = unique(fields.id ?? `sub_${randomToken(24)}`, subscriptions);
      const created = fields.created ?? now();
      const subscription: SubscriptionRecord = {
        id,
        object: "subscription",
        cancel_at_period_end: false,
        canceled_at: null,
        created,
        currency: "usd",
        customer: `cus_${randomToken(14)}`,
        ended_at: null,
        items: {
          object: "list",
          data: [
            {
              id: `si_${randomToken(14)}`,
              object: "subscription_item",
              created,
              price: { id: priceId ?? "price_fake_pro", object: "price" },
              quantity: 1,
              subscription: id,
            },
          ],
          has_more: false,
          url: `/v1/subscription_items?subscription=${id}`,
        },
        livemode,
        metadata: {},
        start_date: created,
        status: "active",
        ...fields,
      };
      subscriptions.set(id, subscription);
      return structuredClone(subscription);
    },

    setSubscriptionStatus(id: string, status: SubscriptionWireStatus): SubscriptionRecord {
      const subscription = subscriptions.get(id);
      if (!subscription) throw new Error(`stripe fake: no subscription ${id}`);
      subscription.status = status;
      if (status === "canceled") {
        subscription.canceled_at ??= now();
        subscription.ended_at ??= subscription.canceled_at;
      }
      return structuredClone(subscription);
    },

    subscriptions: () => newestFirst(subscriptions.values()).map((s) => structuredClone(s)),

    addCheckoutSession(init: Partial<CheckoutSessionRecord> = {}): CheckoutSessionRecord {
      const id = unique(init.id ?? `cs_${livemode ? "live" : "test"}_${randomToken(58)}`, sessions);
      const created = init.created ?? now();
      const customer = init.customer === undefined ? `cus_${randomToken(14)}` : init.customer;
      const session: CheckoutSessionRecord = {
        id,
        object: "checkout.session",
        client_reference_id: null,
        created,
        currency: "usd",
        customer,
        customer_details: { email: `${(customer ?? id).toLowerCase()}@example.com`, name: null, phone: null, tax_exempt: "none" },
        customer_email: null,
        expires_at: created + 24 * 60 * 60,
        livemode,
        metadata: {},
        mode: "subscription",
        payment_status: "paid",
        status: "complete",
        subscription: null,
        url: null,
        ...init,
      };
      sessions.set(id, session);
      return structuredClone(session);
    },

    checkoutSessions: () => newestFirst(sessions.values()).map((s) => structuredClone(s)),

    requestCounts(): Record<string, number> {
      const counts: Record<string, number> = {};
      for (const request of server.requests) {
        const key = `${request.method} ${request.path}`;
        counts[key] = (counts[key] ?? 0) + 1;
      }
      return counts;
    },
  });
}

function apiKeyOf(authorization: string | undefined): string | null {
  if (!authorization) return null;
  if (/^bearer /i.test(authorization)) return authorization.slice(7).trim() || null;
  if (/^basic /i.test(authorization)) return Buffer.from(authorization.slice(6), "base64").toString("utf8").split(":")[0] || null;
  return null;
}

function invalidAuth(message: string): FakeResponse {
  return { status: 401, body: { error: { type: "invalid_request_error", message } } };
}
