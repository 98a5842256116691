// The step action: load the input, make the step's provider call through an adapter,
// return a classified outcome. It writes nothing itself: the workpool hands the
// outcome to provisioning.onStepComplete, which records it and decides what is next.
import { v } from "convex/values";
import { internal } from "./_generated/api";
import { internalAction } from "./_generated/server";
import { loadConfig } from "./lib/config";
import { log } from "./lib/log";
import { vStepContext, vStepInput, vStepOutcome, type StepOutcome } from "./lib/validators";
import { stepDeadlineMs } from "./lib/config";
import { STEPS } from "./registry";
import { outcomeForError } from "./providers/classify";
import { providersFor } from "./providers";

export const runStep = internalAction({
  args: { ...vStepContext.fields, input: v.optional(vStepInput) },
  returns: vStepOutcome,
  handler: async (ctx, { input: dispatched, ...args }): Promise<StepOutcome> => {
    // The input travels with the dispatch; a job made before that reads it.
    const input = dispatched ?? (await ctx.runQuery(internal.provisioning.getStepInput, args));
    if (!input) {
      // Superseded or already recorded: the completion handler will ignore this attempt.
      return { kind: "transient", message: `attempt ${args.attempt} of ${args.step} is no longer current` };
    }
    const started = Date.now();
    let outcome: StepOutcome;
    try {
      const config = loadConfig();
      const providers = providersFor({ ctx, config, correlationId: input.correlationId, attempt: args.attempt });
      outcome = await STEPS[args.step].run({ providers, config, input, attempt: args.attempt, deadlineMs: stepDeadlineMs(config, args.step) });
    } catch (error) {
      const classified = outcomeForError(error);
      outcome = classified.outcome;
      if (!classified.classified) {
        log("error", "step.unclassified_error", { correlationId: input.correlationId, step: args.step, error: outcome.kind === "transient" ? outcome.message : "" });
      }
    }
    log(outcome.kind === "succeeded" || outcome.kind === "waiting" ? "info" : "warn", "step.finished", {
      correlationId: input.correlationId,
      jobId: args.jobId,
      step: args.step,
      attempt: args.attempt,
      outcome: outcome.kind,
      durationMs: Date.now() - started,
    });
    return outcome;
  },
});
