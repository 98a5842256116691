// One structured JSON line per event, carrying the correlation id
// (Stripe event -> job -> step -> provider call). Never log secrets or payloads.
type Field = string | number | boolean | null | undefined;

export function log(
  level: "info" | "warn" | "error",
  event: string,
  fields: { correlationId: string } & Record<string, Field>,
): void {
  // The event name comes last, so no field can overwrite it.
  console[level](JSON.stringify({ level, ...fields, event }));
}

/** What a cron batch returned, as log fields: scalars as they are, lists as their length. */
function summarize(result: unknown): Record<string, Field> {
  if (result === null || result === undefined) return {};
  if (typeof result !== "object") return { result: result as Field };
  const fields: Record<string, Field> = {};
  for (const [key, value] of Object.entries(result)) {
    if (key === "level" || key === "correlationId") continue;
    if (Array.isArray(value)) fields[key] = value.length;
    else if (value === null || typeof value !== "object") fields[key] = value as Field;
  }
  return fields;
}

/**
 * A cron's function (and each continuation of it) writes one `cron.batch` line per run, whether
 * it found work or not: its name, what it returned (counts) and, in an action, how long it took
 * (a mutation's clock stands still, so there it is 0). A run that throws writes `cron.failed`.
 */
export function cronBatch<Ctx, Args, Result>(
  cron: string,
  handler: (ctx: Ctx, args: Args) => Promise<Result>,
): (ctx: Ctx, args: Args) => Promise<Result> {
  return async (ctx, args) => {
    const startedAt = Date.now();
    const correlationId = `cron:${cron}:${startedAt}`;
    try {
      const result = await handler(ctx, args);
      log("info", "cron.batch", { correlationId, cron, ...summarize(result), durationMs: Date.now() - startedAt });
      return result;
    } catch (error) {
      log("error", "cron.failed", { correlationId, cron, error: error instanceof Error ? error.name : "unknown", durationMs: Date.now() - startedAt });
      throw error;
    }
  };
}
