// Shared bookkeeping for the fakes' Idempotency-Key handling: remembers the first
// response recorded under a key together with a fingerprint of the request that
// produced it. Each fake decides what a mismatch or a replay looks like on its wire;
// this module never answers requests itself and never expires keys.
import type { FakeResponse } from "./base";

export type IdempotencyLookup =
  | { kind: "new" }
  | { kind: "replay"; response: FakeResponse }
  | { kind: "mismatch"; scope: string; requested: string };

export type IdempotencyStore = {
  /** What to do with a request carrying `key`; `scope` is e.g. "POST /v1/webhook_endpoints". */
  lookup(key: string, scope: string, params: unknown): IdempotencyLookup;
  remember(key: string, scope: string, params: unknown, response: FakeResponse): void;
};

/** JSON with object keys sorted, so two equal parameter sets give the same text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

export function createIdempotencyStore(): IdempotencyStore {
  const saved = new Map<string, { scope: string; fingerprint: string; response: FakeResponse }>();
  return {
    lookup(key, scope, params) {
      const entry = saved.get(key);
      if (!entry) return { kind: "new" };
      if (entry.scope !== scope) return { kind: "mismatch", scope: entry.scope, requested: scope };
      if (entry.fingerprint !== canonicalJson(params)) return { kind: "mismatch", scope, requested: scope };
      return { kind: "replay", response: structuredClone(entry.response) };
    },
    remember(key, scope, params, response) {
      saved.set(key, { scope, fingerprint: canonicalJson(params), response: structuredClone(response) });
    },
  };
}
