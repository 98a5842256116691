// Brain's provisioning DAG as a @convex-dev/workflow workflow, for bench:cost. The waves come
// from Brain's own registry (each step in the first wave after all it needs), each wave runs
// its steps in parallel with Promise.all, and each step is one action that runs the registry's
// own `run` on Brain's sandbox adapters. `activate` (a state change, no provider call) is made
// by the workflow's last mutation, as Brain makes it inside validate's completion. A thrown provider error is retried by the
// workflow's workpool (retryActionsByDefault) with Brain's attempt budget and base delay.
// deployApp dispatches (the sandbox's simulated run reports after SANDBOX_LATENCY_MS, through
// provisioning.recordDeployReport) and then awaits that report as a workflow event.
import { v } from "convex/values";
import { WorkflowManager, defineEvent } from "@convex-dev/workflow";
import { components, internal } from "./_generated/api";
import { internalAction } from "./_generated/server";
import { loadConfig, stepDeadlineMs } from "../../../convex/lib/config";
import { vInstanceResources, vStepName, type InstanceResources, type StepName } from "../../../convex/lib/validators";
import type { StepInput } from "../../../convex/model/steps";
import { providersFor } from "../../../convex/providers";
import { STEP_LIST, STEPS } from "../../../convex/registry";

/** The report of the deploy run, sent to the workflow that dispatched it. */
export const DEPLOY_REPORT = defineEvent({ name: "deployReport", validator: v.object({ runId: v.string() }) });

/** Steps that end when an external report arrives, not when their action returns (ARCHITECTURE.md). */
const WAITS_FOR_REPORT: ReadonlySet<StepName> = new Set(["deployApp"]);

/** The registry's needs as waves: each step in the wave after the latest of the steps it needs. */
export function wavesOf(needs: Record<StepName, readonly StepName[]>): StepName[][] {
  const level = new Map<StepName, number>();
  const levelOf = (step: StepName): number => {
    const known = level.get(step);
    if (known !== undefined) return known;
    const own = Math.max(-1, ...needs[step].map(levelOf)) + 1;
    level.set(step, own);
    return own;
  };
  const waves: StepName[][] = [];
  for (const step of STEP_LIST) if (STEPS[step].runs === "action") (waves[levelOf(step)] ??= []).push(step);
  return waves;
}
const WAVES = wavesOf(Object.fromEntries(STEP_LIST.map((s) => [s, STEPS[s].needs])) as unknown as Record<StepName, readonly StepName[]>);

// Read once, when convex-test first loads this module: the runner sets the environment before.
const config = loadConfig();
const workflow = new WorkflowManager(components.workflow, {
  workpoolOptions: {
    maxParallelism: Number(process.env.BENCH_WORKFLOW_PARALLELISM ?? 100),
    retryActionsByDefault: true,
    defaultRetryBehavior: { maxAttempts: config.RETRY_MAX_ATTEMPTS, initialBackoffMs: config.RETRY_BASE_DELAY_MS, base: 2 },
    logLevel: "ERROR",
  },
});

const vWorkflowInput = v.object({
  instanceId: v.id("instances"),
  correlationId: v.string(),
  plan: v.string(),
  email: v.string(),
  customerName: v.optional(v.string()),
});

export const provisionWorkflow = workflow
  .define({ args: { input: vWorkflowInput } })
  .handler(async (step, { input }): Promise<null> => {
    let resources: InstanceResources = {};
    for (const wave of WAVES) {
      const stepInput = { ...input, jobId: step.workflowId, resources };
      const produced = await Promise.all(
        wave.map(async (name) => {
          const made = await step.runAction(internal.provision.runStep, { step: name, input: stepInput }, { name });
          if (!WAITS_FOR_REPORT.has(name)) return made;
          const report = await step.awaitEvent(DEPLOY_REPORT);
          return { ...made, deployRunId: report.runId };
        }),
      );
      for (const made of produced) resources = { ...resources, ...made };
    }
    await step.runMutation(internal.checkout.markActive, { instanceId: input.instanceId, resources }, { inline: true });
    return null;
  });

/** One step: Brain's runner for it on Brain's adapters. A provider error is thrown, so the workpool retries it. */
export const runStep = internalAction({
  args: {
    step: vStepName,
    input: v.object({ ...vWorkflowInput.fields, jobId: v.string(), resources: vInstanceResources }),
  },
  returns: vInstanceResources,
  handler: async (ctx, { step, input }): Promise<InstanceResources> => {
    const config = loadConfig();
    // The adapters want Brain's action ctx; they use only runMutation and the scheduler,
    // by function names this app also defines (sandbox:applyOperation, provisioning:recordDeployReport).
    const providers = providersFor({ ctx: ctx as never, config, correlationId: input.correlationId });
    // The action cannot see its attempt number; a retried dispatch adopts the same run.
    const outcome = await STEPS[step].run({
      providers,
      config,
      input: input as unknown as StepInput,
      attempt: 1,
      deadlineMs: stepDeadlineMs(config, step),
    });
    if (outcome.kind === "succeeded" || outcome.kind === "waiting") return outcome.resources;
    throw new Error(`${step}: ${outcome.kind}: ${outcome.message}`);
  },
});
