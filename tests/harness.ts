/// <reference types="vite/client" />
// The one test setup: a convex-test backend with every Brain module, the components
// registered, sandbox providers and a known environment, plus builders for signed
// Stripe deliveries. Any test can drive Brain over HTTP with `t.fetch`.
import { convexTest } from "convex-test";
import workpoolTest from "@convex-dev/workpool/test";
import rateLimiterTest from "@convex-dev/rate-limiter/test";
import aggregateTest from "@convex-dev/aggregate/test";
import Stripe from "stripe";
import schema from "../convex/schema";
import { POOL_NAMES as REGISTRY_POOL_NAMES } from "../convex/registry";
import { internal } from "../convex/_generated/api";
import { ADMISSION_SEGMENT_MS } from "../convex/model/jobs";
import type { ProviderCtx } from "../convex/providers/types";

export const TEST_STRIPE_WEBHOOK_SECRET = "whsec_test_brain_harness_secret";
export const TEST_ADMIN_API_TOKEN = "test-admin-token-0123456789abcdef";

export const modules = import.meta.glob("../convex/**/*.*s");

/** One work pool per provider, as the registry names them (convex.config.ts declares the same). */
export const POOL_NAMES: readonly string[] = REGISTRY_POOL_NAMES;

/** The environment every test starts from; `options.env` is applied over it. */
export const DEFAULT_TEST_ENV: Record<string, string> = {
  STRIPE_WEBHOOK_SECRET: TEST_STRIPE_WEBHOOK_SECRET,
  ADMIN_API_TOKEN: TEST_ADMIN_API_TOKEN,
  PROVIDER_MODE: "sandbox",
  SANDBOX_LATENCY_MS: "50",
  // Rate limits and suspicious-activity thresholds (docs/security.md) far above anything a
  // functional test sends (they poll /status several times a second); tests/security.test.ts
  // sets them low where throttling and blocking are the subject.
  ...Object.fromEntries(
    [
      "RATE_LIMIT_WEBHOOK_PER_ADDRESS_PER_MINUTE",
      "RATE_LIMIT_WEBHOOK_GLOBAL_PER_MINUTE",
      "RATE_LIMIT_RESEND_PER_ADDRESS_PER_MINUTE",
      "RATE_LIMIT_RESEND_GLOBAL_PER_MINUTE",
      "RATE_LIMIT_STATUS_PER_ADDRESS_PER_MINUTE",
      "RATE_LIMIT_STATUS_PER_SESSION_PER_MINUTE",
      "RATE_LIMIT_CALLBACK_PER_JOB_PER_MINUTE",
      "RATE_LIMIT_CALLBACK_PER_ADDRESS_PER_MINUTE",
      "RATE_LIMIT_ADMIN_PER_TOKEN_PER_MINUTE",
      "RATE_LIMIT_ADMIN_FAILURES_PER_ADDRESS_PER_MINUTE",
      "SECURITY_BAD_SIGNATURE_THRESHOLD",
      "SECURITY_UNKNOWN_SESSION_THRESHOLD",
      "SECURITY_ADMIN_FAILURE_THRESHOLD",
    ].map((name) => [name, "1000000"]),
  ),
};

let appliedKeys: string[] = [];
let savedValues: Record<string, string | undefined> = {};

/** Sets the backend's environment, first undoing whatever the previous setup set. */
function applyEnv(env: Record<string, string>) {
  for (const key of appliedKeys) {
    if (savedValues[key] === undefined) delete process.env[key];
    else process.env[key] = savedValues[key];
  }
  appliedKeys = Object.keys(env);
  savedValues = Object.fromEntries(appliedKeys.map((key) => [key, process.env[key]]));
  for (const [key, value] of Object.entries(env)) process.env[key] = value;
}

export function setupBackend(options: { env?: Record<string, string> } = {}) {
  applyEnv({ ...DEFAULT_TEST_ENV, ...options.env });
  const t = convexTest(schema, modules);
  for (const name of [...POOL_NAMES, "healthPool"]) workpoolTest.register(t, name);
  rateLimiterTest.register(t);
  aggregateTest.register(t, "healthCounts");
  return Object.assign(t, { TEST_STRIPE_WEBHOOK_SECRET, TEST_ADMIN_API_TOKEN });
}
export type TestBackend = ReturnType<typeof setupBackend>;

/** An action context over the backend, for calling adapters the way a step action does. */
export function actionCtxOf(t: TestBackend): ProviderCtx {
  type Caller = (ref: unknown, args: unknown) => Promise<unknown>;
  const backend = t as unknown as { query: Caller; mutation: Caller; action: Caller };
  return {
    runQuery: (ref: unknown, args: unknown) => backend.query(ref, args),
    runMutation: (ref: unknown, args: unknown) => backend.mutation(ref, args),
    runAction: (ref: unknown, args: unknown) => backend.action(ref, args),
  } as unknown as ProviderCtx;
}

const stripe = new Stripe("sk_test_harness", { httpClient: Stripe.createFetchHttpClient() });

let counter = 0;
const unique = (prefix: string) => `${prefix}_${Date.now().toString(36)}${(++counter).toString(36).padStart(4, "0")}`;

export type CheckoutOptions = {
  eventId?: string;
  type?: string;
  sessionId?: string;
  paymentStatus?: "paid" | "unpaid" | "no_payment_required";
  email?: string | null;
  name?: string;
  customerId?: string;
  plan?: string;
  /** The subscription the session started (mode subscription). */
  subscriptionId?: string | null;
  /** The event's `created`, unix seconds. */
  created?: number;
};

/** A Stripe event's envelope: its id, type and `created` (unix seconds, default now). */
function envelope(options: { eventId?: string; type?: string; created?: number }, defaultType: string) {
  return {
    id: options.eventId ?? unique("evt_test"),
    object: "event",
    api_version: "2025-10-29.clover",
    created: options.created ?? Math.floor(Date.now() / 1000),
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type: options.type ?? defaultType,
  };
}

/** A Stripe event for a Checkout Session (checkout.session.completed unless `type` says otherwise). */
export function checkoutEvent(options: CheckoutOptions = {}) {
  const sessionId = options.sessionId ?? unique("cs_test");
  const email = options.email === undefined ? `${sessionId.toLowerCase()}@example.com` : options.email;
  return {
    ...envelope(options, "checkout.session.completed"),
    data: {
      object: {
        id: sessionId,
        subscription: options.subscriptionId ?? null,
        object: "checkout.session",
        mode: "subscription",
        status: "complete",
        payment_status: options.paymentStatus ?? "paid",
        customer: options.customerId ?? unique("cus_test"),
        customer_email: email,
        customer_details: email === null ? null : { email, name: options.name ?? "Ada Lovelace" },
        metadata: options.plan ? { plan: options.plan } : {},
        success_url: "https://example.com/status?session_id={CHECKOUT_SESSION_ID}",
      },
    },
  };
}

export type SubscriptionOptions = {
  eventId?: string;
  type?: "customer.subscription.created" | "customer.subscription.updated" | "customer.subscription.deleted";
  subscriptionId: string;
  customerId: string;
  status?: "active" | "trialing" | "past_due" | "unpaid" | "canceled" | "incomplete" | "incomplete_expired" | "paused";
  priceId?: string;
  /** metadata.instanceId */
  instanceId?: string;
  /** The event's `created`, unix seconds (default now). */
  created?: number;
};

/** A `customer.subscription.*` event (updated unless `type` says otherwise), shaped as Stripe sends it. */
export function subscriptionEvent(options: SubscriptionOptions) {
  const status = options.status ?? (options.type === "customer.subscription.deleted" ? "canceled" : "active");
  return {
    ...envelope(options, "customer.subscription.updated"),
    data: {
      object: {
        id: options.subscriptionId,
        object: "subscription",
        customer: options.customerId,
        status,
        items: { object: "list", data: [{ id: unique("si_test"), object: "subscription_item", price: { id: options.priceId ?? "price_test_starter", object: "price" } }] },
        metadata: options.instanceId ? { instanceId: options.instanceId } : {},
        cancel_at_period_end: false,
      },
    },
  };
}

/** Sends one signed event to POST /stripe/webhook. */
export async function sendEvent(t: TestBackend, event: unknown) {
  return t.fetch("/stripe/webhook", signedStripeRequest(event));
}

/** A request init for POST /stripe/webhook, signed like Stripe signs (override the secret or timestamp to forge). */
export function signedStripeRequest(
  event: unknown,
  options: { secret?: string; timestamp?: number; payload?: string } = {},
): RequestInit {
  const payload = options.payload ?? JSON.stringify(event);
  const header = stripe.webhooks.generateTestHeaderString({
    payload,
    secret: options.secret ?? TEST_STRIPE_WEBHOOK_SECRET,
    ...(options.timestamp !== undefined ? { timestamp: options.timestamp } : {}),
  });
  return { method: "POST", body: payload, headers: { "Stripe-Signature": header, "content-type": "application/json" } };
}

export const adminHeaders = (token: string = TEST_ADMIN_API_TOKEN) => ({ Authorization: `Bearer ${token}` });

/** Runs every scheduled function (steps, retries, the workpools' loops) to completion on fake timers. */
export async function drain(t: TestBackend, maxIterations = 10_000) {
  const { vi } = await import("vitest");
  await t.finishAllScheduledFunctions(vi.runAllTimers, maxIterations);
}

/**
 * Runs scheduled work on fake timers for `simulatedMs` of simulated time only (a second at a
 * time), so work scheduled further ahead (a cleanup after CLEANUP_DELAY_MS) stays pending.
 */
export async function drainFor(t: TestBackend, simulatedMs = 2 * 60 * 60_000) {
  const { vi } = await import("vitest");
  const start = Date.now();
  class HorizonReached extends Error {}
  try {
    await t.finishAllScheduledFunctions(() => {
      if (Date.now() - start >= simulatedMs) throw new HorizonReached();
      vi.advanceTimersByTime(1000);
    }, 1_000_000);
  } catch (error) {
    if (!(error instanceof HorizonReached)) throw error;
  }
}

/**
 * Lets `simulatedMs` of simulated time pass, `stepMs` (a minute) at a time, running what comes due. Unlike
 * drainFor, a long quiet stretch (a timer hours ahead, nothing running) does not end it early.
 */
export async function elapse(t: TestBackend, simulatedMs: number, stepMs = 60_000) {
  const { vi } = await import("vitest");
  const end = Date.now() + simulatedMs;
  while (Date.now() < end) {
    vi.advanceTimersByTime(Math.min(stepMs, end - Date.now()));
    await drainFor(t, 15_000);
  }
}

/**
 * Fake timers: processes the checkouts sent so far (their jobs are created queued) and runs
 * admission one segment later, without firing any other timer, so the admitted jobs are
 * `running` with their first steps enqueued but not yet run.
 */
export async function admitNow(t: TestBackend) {
  const { vi } = await import("vitest");
  vi.advanceTimersByTime(1);
  await t.finishInProgressScheduledFunctions();
  vi.setSystemTime(Date.now() + ADMISSION_SEGMENT_MS + 1);
  return t.mutation(internal.provisioning.admitQueuedJobs, {});
}

/** Runs the checkout's job to a terminal status without running cleanups scheduled a day later. */
export async function settleCheckout(t: TestBackend, sessionId: string) {
  await drainFor(t);
  return (await statusOf(t, sessionId)).body;
}

/**
 * Real timers (live mode, where the SDKs do real I/O): polls the status page until the
 * checkout is ready or failed.
 */
export async function pollUntilSettled(t: TestBackend, sessionId: string, timeoutMs = 30_000): Promise<StatusBody> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { body } = await statusOf(t, sessionId);
    if (body.status === "ready" || body.status === "failed") return body;
    if (Date.now() > deadline) throw new Error(`checkout ${sessionId} still ${body.status} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export async function statusOf(t: TestBackend, sessionId: string) {
  const response = await t.fetch(`/status?session_id=${encodeURIComponent(sessionId)}`, {
    headers: { Accept: "application/json" },
  });
  return { status: response.status, body: (await response.json()) as StatusBody };
}

export type StatusBody = {
  status: "pending" | "provisioning" | "ready" | "failed";
  progress: { currentStep: number; totalSteps: number; percent: number };
  currentStepName: string | null;
  etaMs: number | null;
  estimatedReadyAt: number | null;
  steps: { name: string; status: string; attempts: number; lastError?: { class: string; message: string } }[];
  instanceUrl?: string;
  jobId: string | null;
  instanceId: string | null;
  error?: { step: string; class: string; message: string };
  message: string;
};

/** Sends one signed, paid checkout and returns its session id. */
export async function sendCheckout(t: TestBackend, options: CheckoutOptions = {}) {
  const event = checkoutEvent(options);
  const response = await t.fetch("/stripe/webhook", signedStripeRequest(event));
  return { event, sessionId: event.data.object.id, response };
}
