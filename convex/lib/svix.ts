// Svix webhook signatures (Resend signs its webhooks with Svix): headers svix-id, svix-timestamp
// (unix seconds) and svix-signature, a space-separated list of `v1,<base64 HMAC-SHA256>` over
// `${id}.${timestamp}.${body}`, keyed by the base64 secret after `whsec_`. Web Crypto only, so it
// runs in Convex's default runtime; comparisons are constant-time.
import { timingSafeEqual } from "./crypto";

/** Svix's own tolerance: a timestamp further than this from now is refused (replays). */
export const SVIX_TOLERANCE_SECONDS = 5 * 60;

export type SvixVerification = { ok: true } | { ok: false; code: "BAD_REQUEST" | "UNAUTHORIZED"; message: string };

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** `v1,<signature>` of `body` for this id and timestamp (what Svix sends; tests sign with it too). */
export async function svixSignature(secret: string, id: string, timestamp: number | string, body: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", fromBase64(secret.replace(/^whsec_/, "")), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${id}.${timestamp}.${body}`)));
  let binary = "";
  for (const byte of mac) binary += String.fromCharCode(byte);
  return `v1,${btoa(binary)}`;
}

/**
 * Checks a delivery: 400 when a header is missing or malformed, 401 when the timestamp is outside
 * the tolerance or no v1 signature matches.
 */
export async function verifySvix(headers: Headers, body: string, secret: string, nowMs: number = Date.now()): Promise<SvixVerification> {
  const id = headers.get("svix-id");
  const timestamp = headers.get("svix-timestamp");
  const signatures = headers.get("svix-signature");
  if (!id || !timestamp || !signatures) return { ok: false, code: "BAD_REQUEST", message: "svix-id, svix-timestamp and svix-signature are required" };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, code: "BAD_REQUEST", message: "svix-timestamp must be unix seconds" };
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > SVIX_TOLERANCE_SECONDS) {
    return { ok: false, code: "UNAUTHORIZED", message: "svix-timestamp is outside the tolerance" };
  }
  const expected = await svixSignature(secret, id, timestamp, body);
  let matched = false;
  for (const candidate of signatures.split(" ")) {
    if (candidate.startsWith("v1,") && (await timingSafeEqual(candidate, expected))) matched = true;
  }
  return matched ? { ok: true } : { ok: false, code: "UNAUTHORIZED", message: "no valid svix signature" };
}
