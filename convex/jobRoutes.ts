// Admin routes for reading provisioning jobs: GET /admin/jobs lists a page of them, newest first,
// and GET /admin/jobs/:jobId shows one with its steps (what `brain retry --wait` follows).
// Bearer token only, every call audited, JSON both ways; nothing here changes a job.
import type { HttpRouter } from "convex/server";
import { internal } from "./_generated/api";
import type { ActionCtx } from "./_generated/server";
import { isBrainError } from "./lib/errors";
import { log } from "./lib/log";
import { json, jsonError, pathParam } from "./lib/http";
import { vJobStatus, type JobStatus } from "./lib/validators";
import { MAX_JOBS_PAGE } from "./jobViews";
import { adminRoute } from "./security";

const ADMIN_ACTOR = "admin-api";
const PREFIX = "/admin/jobs/";
const STATUSES: readonly string[] = vJobStatus.members.map((member) => member.value);
const DEFAULT_LIMIT = 50;

const audit = (ctx: ActionCtx, action: string, detail: string) =>
  ctx.runMutation(internal.audit.recordAdminCall, { actor: ADMIN_ACTOR, action, detail: detail.slice(0, 200) });

type JobFilters = { status?: JobStatus; cursor: string | null; numItems: number };

/** The query parameters of GET /admin/jobs as filters, or the first problem with them. */
export function parseJobFilters(params: URLSearchParams): JobFilters | { error: string } {
  const status = params.get("status");
  if (status !== null && !STATUSES.includes(status)) return { error: `status must be one of ${STATUSES.join(", ")}` };
  const rawLimit = params.get("limit");
  const numItems = rawLimit === null ? DEFAULT_LIMIT : Number(rawLimit);
  if (!(rawLimit === null || /^\d+$/.test(rawLimit)) || !(Number.isInteger(numItems) && numItems >= 1 && numItems <= MAX_JOBS_PAGE)) {
    return { error: `limit must be an integer from 1 to ${MAX_JOBS_PAGE}` };
  }
  const cursor = params.get("cursor");
  if (cursor === "") return { error: "cursor must not be empty" };
  return { ...(status !== null ? { status: status as JobStatus } : {}), cursor, numItems };
}

/**
 * `GET /admin/jobs?status=&limit=&cursor=` → 200 `{ jobs: [...], continueCursor? }` (newest first);
 * `GET /admin/jobs/<jobId>` → 200 the job with its steps.
 */
export function registerJobRoutes(http: HttpRouter): void {
  http.route({
    path: "/admin/jobs",
    method: "GET",
    handler: adminRoute("/admin/jobs", async (ctx, request) => {
      const filters = parseJobFilters(new URL(request.url).searchParams);
      if ("error" in filters) return jsonError("BAD_REQUEST", filters.error);
      const { cursor, numItems, status } = filters;
      let page;
      try {
        page = await ctx.runQuery(internal.jobViews.listJobs, { ...(status ? { status } : {}), paginationOpts: { cursor, numItems } });
      } catch (error) {
        // A cursor from another listing (or made up) is refused by paginate.
        // What a malformed cursor throws differs by runtime (offline it is a JSON parse error): with a
        // cursor given, any failure that is not Brain's own is the cursor's (found by npm run fuzz).
        if (cursor !== null && !isBrainError(error)) {
          log("warn", "http.bad_cursor", { correlationId: crypto.randomUUID(), route: "/admin/jobs", error: String(error).slice(0, 200) });
          return jsonError("BAD_REQUEST", "cursor is not valid for these filters");
        }
        throw error;
      }
      await audit(ctx, "jobs.listed", `${status ?? "any status"}: ${page.jobs.length} jobs`);
      return json(200, { jobs: page.jobs, ...(page.isDone ? {} : { continueCursor: page.continueCursor }) });
    }),
  });

  http.route({
    pathPrefix: PREFIX,
    method: "GET",
    handler: adminRoute("/admin/jobs/:jobId", async (ctx, request) => {
      const jobId = pathParam(request, PREFIX);
      if (!jobId) return jsonError("INVALID_ID", "expected /admin/jobs/<jobId>");
      const job = await ctx.runQuery(internal.jobViews.getJob, { jobId });
      if (!job) {
        await audit(ctx, "job.not_found", jobId.slice(0, 64));
        return jsonError("NOT_FOUND", `no job ${jobId}`);
      }
      await audit(ctx, "job.read", `${job.jobId}: ${job.status}`);
      return json(200, job);
    }),
  });
}
