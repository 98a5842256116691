// Errors a caller can act on: a ConvexError carrying a machine-readable code,
// mapped to an HTTP status at the boundary. Plain Error messages never reach clients.
import { ConvexError } from "convex/values";

export const HTTP_STATUS = {
  BAD_REQUEST: 400,
  MISSING_SIGNATURE: 400,
  INVALID_SIGNATURE: 400,
  INVALID_EVENT: 400,
  INVALID_ID: 400,
  UNAUTHORIZED: 401,
  BLOCKED: 403,
  CALLBACK_UNSIGNED: 401,
  CALLBACK_BAD_SIGNATURE: 401,
  CALLBACK_STALE: 400,
  CALLBACK_REPLAYED: 400,
  STEP_NOT_WAITING: 409,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  JOB_NOT_FAILED: 409,
  JOB_NOT_IN_PROGRESS: 409,
  COMPENSATION_IN_PROGRESS: 409,
  JOB_ALREADY_RUNNING: 409,
  INSTANCE_DELETED: 409,
  RATE_LIMITED: 429,
  CONFIG_INVALID: 500,
  EVENT_NOT_RECORDED: 500,
  INTERNAL: 500,
  PROVIDER_UNAVAILABLE: 502,
  ADMIN_API_NOT_CONFIGURED: 503,
  CALLBACK_NOT_CONFIGURED: 503,
} as const;
export type ErrorCode = keyof typeof HTTP_STATUS;
export type BrainErrorData = { code: ErrorCode; message: string };

export function fail(code: ErrorCode, message: string): never {
  throw new ConvexError<BrainErrorData>({ code, message });
}

export function isBrainError(e: unknown): e is ConvexError<BrainErrorData> {
  const code = e instanceof ConvexError ? (e.data as { code?: unknown } | null)?.code : undefined;
  return typeof code === "string" && code in HTTP_STATUS;
}
