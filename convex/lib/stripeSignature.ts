// Stripe's webhook signature scheme, for the events Brain forwards to each tenant: the tenant
// verifies them with `stripe.webhooks.constructEvent(body, header, STRIPE_WEBHOOK_SECRET)` as if
// Stripe had sent them. Web Crypto only (Convex's default runtime). Never log a secret or a body.
import type { Config } from "./config";
import { hmacSha256Hex } from "./crypto";

/**
 * The `Stripe-Signature` header Stripe would send for `body`: `t=<unix seconds>,v1=<hex
 * HMAC-SHA256 of "<t>.<body>">`, keyed with the whole secret string (`whsec_` prefix included,
 * as stripe-node does). `body` must be the exact bytes the tenant receives.
 *
 * ```ts
 * const header = await stripeSignatureHeader(body, secret, Math.floor(Date.now() / 1000));
 * ```
 */
export async function stripeSignatureHeader(body: string, secret: string, timestampSeconds: number): Promise<string> {
  const t = Math.floor(timestampSeconds);
  return `t=${t},v1=${await hmacSha256Hex(secret, `${t}.${body}`)}`;
}

/**
 * A new tenant signing secret: `whsec_` + 32 random bytes, base64url (43 characters). Brain
 * stores it encrypted (`resources.tenantWebhookSecretCiphertext`) and sets it on the tenant
 * deployment as `STRIPE_WEBHOOK_SECRET`.
 */
export function newTenantWebhookSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return `whsec_${btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`;
}

/**
 * Where one tenant receives its forwarded events: TENANT_EVENTS_URL_TEMPLATE with every
 * `{deployment}` (the instance's Convex deployment name) and `{instanceId}` filled in.
 * Default: `https://<deployment>.convex.site/stripe/events` (HTTP actions live on .convex.site).
 */
export function tenantEventsUrl(
  config: Pick<Config, "TENANT_EVENTS_URL_TEMPLATE">,
  target: { deploymentName: string; instanceId: string },
): string {
  return config.TENANT_EVENTS_URL_TEMPLATE.replaceAll("{deployment}", encodeURIComponent(target.deploymentName)).replaceAll(
    "{instanceId}",
    encodeURIComponent(target.instanceId),
  );
}
