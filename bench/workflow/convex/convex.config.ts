// The bench:cost workflow app: Brain's provisioning DAG on @convex-dev/workflow, for comparison
// only. It is never deployed; scripts/bench/cost.run.ts runs it under convex-test.
import { defineApp } from "convex/server";
import workflow from "@convex-dev/workflow/convex.config";

const app = defineApp();
app.use(workflow);
export default app;
