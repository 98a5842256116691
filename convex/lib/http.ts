// JSON responses for the HTTP routes. Every error body is
// { "error": { "code": "SCREAMING_SNAKE", "message": "..." } } with the code's status.
import { HTTP_STATUS, type ErrorCode } from "./errors";

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
  const rest = decodeURIComponent(new URL(request.url).pathname.slice(prefix.length));
  return rest.length > 0 && !rest.includes("/") ? rest : null;
}
