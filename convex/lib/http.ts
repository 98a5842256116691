// JSON responses for the HTTP routes. Every error body is
// { "error": { "code": "SCREAMING_SNAKE", "message": "..." } } with the code's status.
import { z } from "zod";
import { httpAction, type ActionCtx } from "../_generated/server";
import { loadConfig, type Config } from "./config";
import { HTTP_STATUS, isBrainError, type ErrorCode } from "./errors";
import { log } from "./log";

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers },
  });
}

export function jsonError(code: ErrorCode, message: string, headers: Record<string, string> = {}): Response {
  return json(HTTP_STATUS[code], { error: { code, message } }, headers);
}

export function wantsJson(request: Request): boolean {
  return (request.headers.get("accept") ?? "").includes("application/json");
}

/** The single path segment after a route prefix, or null when there is none (or more than one). */
export function pathParam(request: Request, prefix: string): string | null {
  const raw = new URL(request.url).pathname.slice(prefix.length);
  let rest: string;
  try {
    rest = decodeURIComponent(raw);
  } catch {
    return null; // malformed percent-encoding
  }
  return rest.length > 0 && !rest.includes("/") ? rest : null;
}

/** Wraps a handler so configuration and unexpected errors still answer in the JSON error shape. */
export function route(name: string, handler: (ctx: ActionCtx, request: Request, config: Config) => Promise<Response>) {
  return httpAction(async (ctx, request) => {
    try {
      return await handler(ctx, request, loadConfig());
    } catch (error) {
      if (isBrainError(error)) return jsonError(error.data.code, error.data.message);
      log("error", "http.unexpected", { correlationId: crypto.randomUUID(), route: name, error: String(error) });
      return jsonError("INTERNAL", "unexpected error; see the deployment's logs");
    }
  });
}

/**
 * For a route that takes no body: nothing, or `{}`. Anything else is refused with the message
 * returned, so a malformed request starts nothing.
 */
export async function refuseBody(request: Request): Promise<string | null> {
  const text = await request.text();
  if (text.trim() === "") return null;
  try {
    const payload: unknown = JSON.parse(text);
    if (payload !== null && typeof payload === "object" && !Array.isArray(payload) && Object.keys(payload).length === 0) return null;
  } catch {
    // not JSON: refused below
  }
  return "this route takes no body (send none, or {})";
}

/** Unknown keys are refused: a misspelt `dryrun: false` must not quietly become a dry run. */
const DryRunBody = z.strictObject({ dryRun: z.boolean().optional() });

/** `{ dryRun }` from an admin body (empty: a dry run), or the message to answer 400 with. */
export async function readDryRunBody(request: Request): Promise<{ dryRun: boolean } | { error: string }> {
  const text = await request.text();
  if (text.trim() === "") return { dryRun: true };
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    return { error: "body is not JSON" };
  }
  const parsed = DryRunBody.safeParse(payload);
  if (!parsed.success) return { error: 'body must be { "dryRun": boolean } (dryRun defaults to true)' };
  return { dryRun: parsed.data.dryRun ?? true };
}
