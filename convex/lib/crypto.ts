// Secrets at rest (tenant deploy keys, webhook signing secrets) are AES-GCM
// ciphertext keyed by ENCRYPTION_KEY; comparisons of secrets are constant-time.
// Web Crypto only, so this runs in Convex's default runtime.

// Used only when ENCRYPTION_KEY is unset, which the config allows in sandbox mode,
// where every "secret" is simulated. Live mode requires a real key.
const SANDBOX_DEV_KEY = "YnJhaW4tc2FuZGJveC1kZXYta2V5LW5vdC1zZWNyZXQ=";

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

async function importKey(keyBase64: string | undefined): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", fromBase64(keyBase64 ?? SANDBOX_DEV_KEY), "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
}

/** Encrypts `plaintext`; the result is `v1:<iv>:<ciphertext>`, both base64. */
export async function encryptSecret(plaintext: string, keyBase64: string | undefined): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const key = await importKey(keyBase64);
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, new TextEncoder().encode(plaintext));
  return `v1:${toBase64(iv)}:${toBase64(new Uint8Array(sealed))}`;
}

export async function decryptSecret(sealed: string, keyBase64: string | undefined): Promise<string> {
  const [version, iv, data] = sealed.split(":");
  if (version !== "v1" || !iv || !data) throw new Error("unrecognised ciphertext format");
  const key = await importKey(keyBase64);
  const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: fromBase64(iv) }, key, fromBase64(data));
  return new TextDecoder().decode(plain);
}

/** Compares two secrets in time independent of where they differ (and of their lengths). */
export async function timingSafeEqual(a: string, b: string): Promise<boolean> {
  const encoder = new TextEncoder();
  const [da, db] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(a)),
    crypto.subtle.digest("SHA-256", encoder.encode(b)),
  ]);
  const x = new Uint8Array(da);
  const y = new Uint8Array(db);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

/**
 * Seals a secret for the tenant deploy workflow, keyed by SHA-256 of the shared
 * PROVISION_CALLBACK_SECRET, so it never travels as a plain workflow input.
 * Format `v1:<iv>:<ciphertext+tag>` (base64): Node's aes-256-gcm opens it (see provision_backend.yml).
 */
export async function sealForWorkflow(plaintext: string, sharedSecret: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(sharedSecret));
  return encryptSecret(plaintext, toBase64(new Uint8Array(digest)));
}

/** Hex HMAC-SHA256 of `message` keyed by `secret` (callback signatures). */
export async function hmacSha256Hex(secret: string, message: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const signature = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(message)));
  return Array.from(signature, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Hex SHA-256 of a text (stable keys derived from inputs). */
export async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}
