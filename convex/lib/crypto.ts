// Secrets at rest (tenant deploy keys, tenant webhook signing secrets) are AES-GCM ciphertext
// tagged with the id of the key that sealed them (ENCRYPTION_KEYS: `id:base64key,...`, the first
// current); comparisons of secrets are constant-time. Web Crypto only, so this runs in Convex's
// default runtime. Error messages name key ids, never keys or plaintext.

// Used only when no encryption key is set, which the config allows in sandbox mode,
// where every "secret" is simulated. Live mode requires a real key.
const SANDBOX_DEV_KEY = "YnJhaW4tc2FuZGJveC1kZXYta2V5LW5vdC1zZWNyZXQ=";

/**
 * The id of the single ENCRYPTION_KEY, and of the key that opens ciphertexts written before key
 * ids existed (`v1:<iv>:<data>`). To move off a single ENCRYPTION_KEY, list it under this id
 * in ENCRYPTION_KEYS behind the new current key.
 */
export const LEGACY_KEY_ID = "default";

/** Key ids: letters, digits, `_` and `-` (they appear inside ciphertexts, between colons). */
export const KEY_ID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;

export type EncryptionKey = { id: string; key: string };
/** The keys secrets may be sealed under; the first seals new ones. Never empty. */
export type Keyring = readonly EncryptionKey[];

/** A keyring or a single base64 key (taken as the key with id LEGACY_KEY_ID); undefined: the sandbox key. */
export type KeySource = Keyring | string | undefined;

export function toKeyring(source: KeySource): Keyring {
  if (source === undefined) return [{ id: LEGACY_KEY_ID, key: SANDBOX_DEV_KEY }];
  if (typeof source === "string") return [{ id: LEGACY_KEY_ID, key: source }];
  if (source.length === 0) throw new Error("the encryption keyring is empty");
  return source;
}

/**
 * The keys secrets are sealed under, the current one first: ENCRYPTION_KEYS, else the single
 * ENCRYPTION_KEY under id LEGACY_KEY_ID, else the sandbox's published key under that id.
 * (Takes the config's two fields so this leaf module imports nothing.)
 */
export function encryptionKeys(config: { ENCRYPTION_KEYS?: Keyring; ENCRYPTION_KEY?: string }): Keyring {
  if (config.ENCRYPTION_KEYS && config.ENCRYPTION_KEYS.length > 0) return config.ENCRYPTION_KEYS;
  return toKeyring(config.ENCRYPTION_KEY);
}

/** Why a secret could not be opened: names the key id, never the key or the secret. */
export class SecretDecryptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SecretDecryptionError";
  }
}

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

async function importKey(keyBase64: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", fromBase64(keyBase64), "AES-GCM", false, ["encrypt", "decrypt"]);
}

async function seal(plaintext: string, keyBase64: string): Promise<{ iv: string; data: string }> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const key = await importKey(keyBase64);
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, new TextEncoder().encode(plaintext));
  return { iv: toBase64(iv), data: toBase64(new Uint8Array(sealed)) };
}

/** The key id a ciphertext was sealed under, without opening it (`v1` ones: LEGACY_KEY_ID). */
export function ciphertextKeyId(sealed: string): string {
  const parts = sealed.split(":");
  if (parts[0] === "v2" && parts.length === 4 && KEY_ID_PATTERN.test(parts[1])) return parts[1];
  if (parts[0] === "v1" && parts.length === 3) return LEGACY_KEY_ID;
  throw new SecretDecryptionError("unrecognised ciphertext format");
}

/**
 * Encrypts `plaintext` under the keyring's current (first) key: `v2:<keyId>:<iv>:<ciphertext>`,
 * iv and ciphertext (with its tag) base64.
 */
export async function encryptSecret(plaintext: string, keys: KeySource): Promise<string> {
  const current = toKeyring(keys)[0];
  const { iv, data } = await seal(plaintext, current.key);
  return `v2:${current.id}:${iv}:${data}`;
}

/**
 * Opens a ciphertext with the key its id names (`v1` ones: the key with id LEGACY_KEY_ID).
 * An id the keyring lacks, or a key that does not open it, throws SecretDecryptionError naming the id.
 */
export async function decryptSecret(sealed: string, keys: KeySource): Promise<string> {
  const keyId = ciphertextKeyId(sealed);
  const parts = sealed.split(":");
  const [iv, data] = parts[0] === "v2" ? [parts[2], parts[3]] : [parts[1], parts[2]];
  if (!iv || !data) throw new SecretDecryptionError("unrecognised ciphertext format");
  const entry = toKeyring(keys).find((k) => k.id === keyId);
  if (!entry) {
    throw new SecretDecryptionError(`a secret is sealed under encryption key id "${keyId}", which ENCRYPTION_KEYS does not hold`);
  }
  try {
    const key = await importKey(entry.key);
    const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: fromBase64(iv) }, key, fromBase64(data));
    return new TextDecoder().decode(plain);
  } catch {
    throw new SecretDecryptionError(`a secret sealed under encryption key id "${keyId}" could not be opened with that key (the key changed?)`);
  }
}

/** True when the ciphertext is sealed under the keyring's current key (rotation skips it). */
export function isUnderCurrentKey(sealed: string, keys: KeySource): boolean {
  try {
    return ciphertextKeyId(sealed) === toKeyring(keys)[0].id && sealed.startsWith("v2:");
  } catch {
    return false;
  }
}

/** Re-seals a ciphertext under the current key (already there: returned as it is). */
export async function reencryptSecret(sealed: string, keys: KeySource): Promise<string> {
  if (isUnderCurrentKey(sealed, keys)) return sealed;
  return encryptSecret(await decryptSecret(sealed, keys), keys);
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
  // The workflow's own format (no key id): it knows one key.
  const { iv, data } = await seal(plaintext, toBase64(new Uint8Array(digest)));
  return `v1:${iv}:${data}`;
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
