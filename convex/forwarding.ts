// Stripe events forwarded to each tenant (ARCHITECTURE, "Stripe"): the per-tenant pump and
// its mutations, the cron backstop, and the admin reads and redeliver. All internal. The pump
// never sends a tenant anything but its own rows, to its own deployment, signed with its own
// secret; it never logs a body or a secret. The logic lives in model/forwarding.ts.
import { v } from "convex/values";
import { internal } from "./_generated/api";
import { internalAction, internalMutation, internalQuery } from "./_generated/server";
import { loadConfig } from "./lib/config";
import { decryptSecret, encryptionKeys, SecretDecryptionError } from "./lib/crypto";
import { log, cronBatch } from "./lib/log";
import { stripeSignatureHeader, tenantEventsUrl } from "./lib/stripeSignature";
import {
  claimNext,
  recordResult,
  redeliver as redeliverDelivery,
  renewWindows,
  stopBatch,
  sweepDue,
  listForInstance,
  vAttemptOutcome,
  vClaim,
  vDeliveryView,
  vRecordResult,
  vQueuePosition,
  vRedeliverResult,
  type AttemptOutcome,
} from "./model/forwarding";
import { providersFor } from "./providers";
import { ProviderError } from "./providers/types";

/** Claims one pump run makes at most before it hands over to a fresh run (an action's time is bounded). */
const MAX_SENDS_PER_RUN = 25;
/** And the time it spends; a send itself is bounded by PROVIDER_TIMEOUT_MS. */
const RUN_BUDGET_MS = 60_000;

/**
 * The tenant's pump: claim the head → sign it with the tenant's secret → deliverEvent → record,
 * in a loop, in `eventCreated` order. It stops when there is nothing to send now (held, idle,
 * the head in flight in another run, or a failed head waiting out its backoff: recording that
 * failure scheduled the pump for then), and hands over to a fresh run after a bounded number
 * of sends. Any number may be scheduled at once: only the holder of the head's lease sends.
 */
export const forwardTenantEvents = internalAction({
  args: { instanceId: v.id("instances") },
  returns: v.null(),
  handler: async (ctx, { instanceId }) => {
    const config = loadConfig();
    const started = Date.now();
    for (let round = 0; round < MAX_SENDS_PER_RUN && Date.now() - started < RUN_BUDGET_MS; round++) {
      const claim = await ctx.runMutation(internal.forwarding.claimNextDelivery, { instanceId });
      if (claim.kind === "expired") continue; // gave up expired heads: the next one may go
      if (claim.kind !== "claimed") return null;
      const sendStarted = Date.now();
      let outcome: AttemptOutcome;
      try {
        const secret = await decryptSecret(claim.secretCiphertext, encryptionKeys(config));
        const signature = await stripeSignatureHeader(claim.body, secret, Math.floor(Date.now() / 1000));
        const url = tenantEventsUrl(config, { deploymentName: claim.deploymentName, instanceId });
        const providers = providersFor({ ctx, config, correlationId: claim.eventId, attempt: claim.attempt });
        const { status } = await providers.convex.deliverEvent({ deploymentName: claim.deploymentName, url, body: claim.body, signature });
        outcome = { kind: "answered", status };
      } catch (error) {
        outcome = { kind: "error", message: describeError(error) };
      }
      const result = await ctx.runMutation(internal.forwarding.recordDeliveryResult, {
        deliveryId: claim.deliveryId,
        token: claim.token,
        outcome,
      });
      log(result.kind === "delivered" ? "info" : "warn", "forward.sent", {
        correlationId: claim.eventId,
        instanceId,
        deliveryId: claim.deliveryId,
        eventType: claim.eventType,
        attempt: claim.attempt,
        status: outcome.kind === "answered" ? outcome.status : null,
        error: outcome.kind === "error" ? outcome.message : null,
        result: result.kind,
        durationMs: Date.now() - sendStarted,
      });
      // Retrying: the pump is scheduled for the retry. Stale: another run owns the head now.
      if (result.kind === "retrying" || result.kind === "stale") return null;
    }
    await ctx.scheduler.runAfter(0, internal.forwarding.forwardTenantEvents, { instanceId });
    return null;
  },
});

/** Why a send got no answer, fit for lastError and the logs (no secret, no body). */
function describeError(error: unknown): string {
  if (error instanceof ProviderError) return `${error.kind}: ${error.message}`.slice(0, 500);
  // It names the key id (never a key or the secret): "not held", or "could not be opened with that key".
  if (error instanceof SecretDecryptionError) return `the tenant's signing secret could not be decrypted: ${error.message}`.slice(0, 500);
  return `unexpected: ${error instanceof Error ? error.message : String(error)}`.slice(0, 500);
}

/** The pump's claim: the tenant's head, leased to this run, or why there is nothing to send. */
export const claimNextDelivery = internalMutation({
  args: { instanceId: v.id("instances") },
  returns: vClaim,
  handler: async (ctx, { instanceId }) => claimNext(ctx, loadConfig(), instanceId),
});

/** Records one send under its lease token; a result whose lease was taken over changes nothing. */
export const recordDeliveryResult = internalMutation({
  args: { deliveryId: v.id("tenantDeliveries"), token: v.string(), outcome: vAttemptOutcome },
  returns: vRecordResult,
  handler: async (ctx, { deliveryId, token, outcome }) => recordResult(ctx, loadConfig(), deliveryId, token, outcome),
});

/**
 * Cron backstop (every minute): kicks each tenant whose head is due and not under a live lease.
 * Catches a lost scheduled pump and a pump that died holding a lease (once `inFlight.until`
 * passed). Pages through every due row; `now` and `cursor` carry a sweep across pages.
 */
export const retryDueDeliveries = internalMutation({
  args: { now: v.optional(v.number()), cursor: v.optional(v.union(v.string(), v.null())) },
  returns: v.object({ kicked: v.number() }),
  handler: cronBatch("forwarding.retryDueDeliveries", async (ctx, { now, cursor }: { now?: number; cursor?: string | null }) => ({ kicked: await sweepDue(ctx, now ?? Date.now(), cursor ?? null) })),
});

/** kickForwarding's continuation: renews the windows of the next page of a tenant's pending deliveries. */
export const renewHeldDeliveries = internalMutation({
  args: { instanceId: v.id("instances"), expiresAt: v.number(), after: vQueuePosition },
  returns: v.null(),
  handler: async (ctx, { instanceId, expiresAt, after }) => {
    await renewWindows(ctx, instanceId, expiresAt, after);
    return null;
  },
});

/** stopForwarding's continuation: fails the next batch of a tenant's pending deliveries. */
export const stopPendingDeliveries = internalMutation({
  args: { instanceId: v.id("instances"), reason: v.string() },
  returns: v.null(),
  handler: async (ctx, { instanceId, reason }) => {
    await stopBatch(ctx, instanceId, reason);
    return null;
  },
});

/** An instance's newest deliveries (by event time), at most `limit` (default 50, up to 200); null for an unknown instance. */
export const listDeliveries = internalQuery({
  args: { instanceId: v.string(), limit: v.optional(v.number()) },
  returns: v.union(v.null(), v.array(vDeliveryView)),
  handler: async (ctx, { instanceId, limit }) => listForInstance(ctx, instanceId, Math.max(1, Math.min(Math.floor(limit ?? 50), 200))),
});

/**
 * Sends a delivery again (admin API, dashboard): any status becomes pending with a fresh
 * window and its backoff started over; audited. Unknown id: refused NOT_FOUND.
 */
export const redeliver = internalMutation({
  args: { deliveryId: v.string(), actor: v.string() },
  returns: vRedeliverResult,
  handler: async (ctx, { deliveryId, actor }) => redeliverDelivery(ctx, loadConfig(), deliveryId, actor),
});
