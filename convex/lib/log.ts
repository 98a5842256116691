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
