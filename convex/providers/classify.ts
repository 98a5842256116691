// Failure classification in one place (the stripe-node habit): what a status means
// for retrying, and how anything an adapter throws becomes a step outcome.
import { isBrainError } from "../lib/errors";
import type { FailureClass, ProviderName, StepOutcome } from "../lib/validators";
import { ProviderError } from "./types";

export function kindForStatus(status: number): FailureClass {
  if (status === 429) return "rate_limited";
  if (status === 408 || status >= 500) return "transient";
  return "permanent"; // other 4xx: asking again gets the same answer
}

/**
 * Turns a thrown value into a step outcome. Anything unclassified counts as transient:
 * an unknown failure may cost a retry, but it must never leave a job stuck.
 */
export function outcomeForError(error: unknown): { outcome: StepOutcome; classified: boolean; provider?: ProviderName } {
  if (error instanceof ProviderError) {
    const message = `${error.provider}: ${error.message}`;
    if (error.kind === "rate_limited") {
      return {
        outcome: { kind: "rate_limited", message, retryAfterMs: error.retryAfterMs ?? 0 },
        classified: true,
        provider: error.provider,
      };
    }
    if (error.kind === "permanent") {
      return {
        outcome: { kind: "permanent", message, ...(error.providerCode ? { providerCode: error.providerCode } : {}) },
        classified: true,
        provider: error.provider,
      };
    }
    return { outcome: { kind: "transient", message }, classified: true, provider: error.provider };
  }
  if (isBrainError(error)) {
    // Brain's own refusal (a bad configuration, say): asking again gets the same answer.
    return { outcome: { kind: "permanent", message: error.data.message, providerCode: error.data.code }, classified: true };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { outcome: { kind: "transient", message: `unexpected error: ${message}` }, classified: false };
}
