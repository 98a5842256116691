// The workflow app's tables: the same definitions as Brain's for what both variants keep
// (the Stripe event, the customer, the instance) and for the sandbox providers' state, so
// Brain's sandbox adapters run here unchanged. The job's own state lives in the workflow
// component (its journal), which is what the benchmark compares with Brain's engine.
import { defineSchema } from "convex/server";
import brain from "../../../convex/schema";

export default defineSchema({
  stripeEvents: brain.tables.stripeEvents,
  customers: brain.tables.customers,
  instances: brain.tables.instances,
  sandboxResources: brain.tables.sandboxResources,
  sandboxFaults: brain.tables.sandboxFaults,
});
