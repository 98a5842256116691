// Random provider faults for the sandbox, for rehearsals and the chaos benchmark:
// SANDBOX_FAULT_RATE of calls fail transiently, evenly mixed between a 5xx, a 429 with
// Retry-After, a timeout and a response lost after the provider acted. Decisions come
// from SANDBOX_FAULT_SEED, the call's correlation id, operation, resource and how many
// times that call was made, so a run with the same seed makes the same decisions.

export type ChaosFault = "server_error" | "rate_limited" | "timeout" | "response_lost";
const KINDS: ChaosFault[] = ["server_error", "rate_limited", "timeout", "response_lost"];

const calls = new Map<string, number>();

function hash32(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  h ^= h >>> 13;
  h = Math.imul(h, 0x5bd1e995);
  h ^= h >>> 15;
  return h >>> 0;
}

/** The fault this call meets, or null. */
export function chaosFault(rate: number, seed: number, key: string): ChaosFault | null {
  if (rate <= 0) return null;
  const n = (calls.get(key) ?? 0) + 1;
  calls.set(key, n);
  if (calls.size > 100_000) calls.clear(); // bounded memory in a long-lived isolate
  const roll = hash32(`${seed}:${key}:${n}`) / 2 ** 32;
  if (roll >= rate) return null;
  return KINDS[Math.floor((roll / rate) * KINDS.length) % KINDS.length];
}
