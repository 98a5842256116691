// The alert webhook's signature (ALERT_WEBHOOK_URL): `Brain-Signature: t=<unix seconds>,v1=<hex
// HMAC-SHA256 of "<t>.<body>">` keyed with ALERT_WEBHOOK_SECRET. The same scheme as Stripe's and
// the provisioning callback's, so a receiver can reuse its verifier. Never log the secret.
import { hmacSha256Hex } from "./crypto";

export const ALERT_SIGNATURE_HEADER = "Brain-Signature";
export const ALERT_DELIVERY_HEADER = "Brain-Delivery";

/**
 * The `Brain-Signature` value for `body` at `timestampSeconds` (floored); `body` must be the
 * exact bytes sent.
 *
 * ```ts
 * const header = await alertSignatureHeader(body, config.ALERT_WEBHOOK_SECRET, Math.floor(Date.now() / 1000));
 * ```
 */
export async function alertSignatureHeader(body: string, secret: string, timestampSeconds: number): Promise<string> {
  const t = Math.floor(timestampSeconds);
  return `t=${t},v1=${await hmacSha256Hex(secret, `${t}.${body}`)}`;
}
