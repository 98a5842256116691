// The sandbox's simulated GitHub run reports by scheduling "provisioning:recordDeployReport"
// (convex/providers/sandbox.ts), the name of Brain's handler. Here the same report becomes the
// event the workflow awaits after its deployApp dispatch.
import { v } from "convex/values";
import { sendEvent } from "@convex-dev/workflow";
import { components } from "./_generated/api";
import { internalMutation } from "./_generated/server";
import { vStepName } from "../../../convex/lib/validators";
import { DEPLOY_REPORT } from "./provision";

export const recordDeployReport = internalMutation({
  args: {
    // Brain passes its job id; the workflow app passes the workflow id in its place.
    jobId: v.string(),
    step: vStepName,
    status: v.union(v.literal("succeeded"), v.literal("failed")),
    runId: v.string(),
    dispatchId: v.optional(v.string()),
    message: v.optional(v.string()),
    reporter: v.string(),
  },
  returns: v.null(),
  handler: async (ctx, args) => {
    await sendEvent(ctx, components.workflow, {
      ...DEPLOY_REPORT,
      workflowId: args.jobId as never,
      ...(args.status === "succeeded"
        ? { value: { runId: args.runId } }
        : { error: `deploy run ${args.runId} failed: ${args.message ?? "no message"}` }),
    });
    return null;
  },
});
