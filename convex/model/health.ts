// Health of one instance, checked now through the adapters: each resource it holds
// is probed, and the overall verdict is healthy (all answer), down (none) or degraded.
import { internal } from "../_generated/api";
import type { Config } from "../lib/config";
import type { HealthReport, HealthStatus, ResourceCheck } from "../lib/validators";
import { outcomeForError } from "../providers/classify";
import { providersFor } from "../providers";
import type { ProviderCtx, ResourceProbe } from "../providers/types";
import { STEP_LIST, stepSpec } from "../registry";
import { isLive } from "./lifecycleRules";

export function overallHealth(checks: ResourceCheck[]): HealthStatus {
  const ok = checks.filter((c) => c.ok).length;
  if (checks.length > 0 && ok === checks.length) return "healthy";
  return ok === 0 ? "down" : "degraded";
}

async function probeSafely(
  resource: string,
  provider: ResourceCheck["provider"],
  id: string | undefined,
  probe: () => Promise<ResourceProbe>,
): Promise<ResourceCheck> {
  if (id === undefined) return { resource, provider, ok: false, detail: "not provisioned" };
  try {
    const result = await probe();
    return { resource, provider, id, ok: result.ok, detail: result.detail };
  } catch (error) {
    // The probe could not be made (a ResourceProbe throws only then): not ok, but say so
    // rather than report the resource as missing.
    const { outcome } = outcomeForError(error);
    const reason = "message" in outcome ? `: ${outcome.message}` : "";
    return { resource, provider, id, ok: false, detail: `probe could not be made (${outcome.kind})${reason}` };
  }
}

export async function checkInstanceHealth(
  ctx: ProviderCtx,
  config: Config,
  rawInstanceId: string,
  trigger: string,
): Promise<HealthReport | null> {
  const instance = await ctx.runQuery(internal.monitoring.getInstanceResources, { instanceId: rawInstanceId });
  if (!instance) return null;
  const { instanceId } = instance;
  if (!isLive(instance.status) && instance.status !== "provisioning" && instance.status !== "failed") {
    // Suspended (its backend paused on purpose), being deprovisioned, or deleted: nothing to probe or record.
    return { instanceId, overall: instance.healthStatus === "active" || !instance.healthStatus ? "healthy" : instance.healthStatus, checkedAt: Date.now(), resources: [], skipped: `instance is ${instance.status}` };
  }
  const providers = providersFor({ ctx, config, correlationId: instance.correlationId ?? `health:${instanceId}` });
  const probes = STEP_LIST.flatMap((step) => {
    const probe = stepSpec(step).probe;
    return probe?.health ? [{ step, probe }] : [];
  });
  const resources = await Promise.all(
    probes.map(({ step, probe }) => {
      const provider = stepSpec(step).provider;
      const id = instance.resources[probe.requires];
      return probeSafely(probe.resource, provider, id === undefined ? undefined : String(id), () =>
        probe.run({ providers, config, instanceId, resources: instance.resources }),
      );
    }),
  );
  const report: HealthReport = { instanceId, overall: overallHealth(resources), checkedAt: Date.now(), resources };
  await ctx.runMutation(internal.monitoring.recordHealthCheck, { report, trigger });
  return report;
}
