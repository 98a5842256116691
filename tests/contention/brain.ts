// Brain's side of the contention check: which provisioning job a recorded transaction
// belongs to, what to call it, and which functions are hot paths. The recorder and the
// checker stay generic; everything that knows Brain's tables and functions is here.
import type { Value } from "convex/values";
import type { TestBackend } from "../harness";
import type { Owner } from "./checker";
import { APP_COMPONENT, inRange, type TransactionRecord, type WriteRecord } from "./recorder";

/**
 * The hot paths: what runs for every checkout, many at once during a burst. Each must not
 * read what another job's hot path writes. `required` ones must appear in a sandbox burst;
 * `optional` ones run only in live mode or on rarer branches (and are checked when they run).
 * When the engine gains a function a burst runs (the separate admission mutation, say),
 * the test fails until it is named here or in COLD_PATHS.
 */
export const HOT_PATHS = {
  required: [
    "stripe:recordStripeEvent", // webhook intake (called by the HTTP action)
    "stripe:processStripeEvent", // event processing and job creation
    "provisioning:onStepComplete", // step completion, run inside the workpool's `complete`
    "provisioning:recordDeployReport", // the deploy run's report (the sandbox's simulated run)
    // (provisioning:getStepInput is no longer on the hot path: a step's input travels with its dispatch.)
    "provisioning:getStatusBySession", // the public status page
    "provisioning:admitQueuedJobs", // admission: starts queued jobs a segment after they queue
    "security:screenRequest", // the public routes' rate limits and blocks (webhook intake, status page)
  ],
  optional: [
    "provisioning:recordDeployCallback", // the real workflow's signed callback (live GitHub)
    "provisioning:expireWaitingStep", // a deploy report that never came
    "providerCache:getWorkosUser", // live WorkOS: the user lookup cache
    "providerCache:putWorkosUser",
    "provisioning:onCircuitWake", // a step parked behind an open circuit looks again
    "stripe:checkPagesCap", // live Cloudflare: the Pages cap, counted by the webhook's HTTP action
    "forwarding:claimNextDelivery", // a tenant's pump takes its oldest pending forward (once the instance is active)
    "forwarding:recordDeliveryResult", // and records the tenant's answer
    "notifications:enqueueNotificationSend", // a job's customer email handed to the Resend pool
    "notifications:claimNotification", // its send takes the row's lease
    "notifications:recordNotificationAttempt", // and records Resend's answer
  ],
} as const;

/**
 * Functions a burst may run that are not hot paths, and why they are left out.
 * Crons and admin calls run once a minute or by hand, not once per checkout; the sandbox
 * functions stand in for the providers' own APIs and do not exist in a live deployment.
 */
export const COLD_PATHS: Record<string, string> = {
  "provisioning:runWatchdog": "cron, once a minute: a sweep over running jobs, attributed to none",
  "stripe:reprocessStaleEvents": "cron",
  "cleanup:retryPendingCleanups": "cron",
  "cleanup:startCompensation": "after a job failed for good",
  "cleanup:listPendingTasks": "after a job failed for good",
  "cleanup:correlationOf": "after a job failed for good",
  "cleanup:recordCleanupResult": "after a job failed for good",
  "cleanup:finishCompensation": "after a job failed for good",
  "cleanup:compensateNow": "operator",
  "provisioning:retryJob": "admin API / operator",
  "provisioning:cancelJob": "admin API / operator",
  "provisioning:listDeadLetter": "admin API / operator",
  "provisioning:listJobsByStatus": "dashboard",
  "audit:recordAdminCall": "admin API",
  "forwarding:retryDueDeliveries": "cron, once a minute: kicks tenants whose head is due, attributed to none",
  "forwarding:renewHeldDeliveries": "kickForwarding's continuation past its first page (a tenant held with many events)",
  "forwarding:stopPendingDeliveries": "stopForwarding's continuation (a deprovisioned tenant)",
  "forwarding:listDeliveries": "admin API / operator",
  "forwarding:redeliver": "admin API / operator",
  "sandbox:applyOperation": "simulated provider (sandbox mode only): stands in for the provider's own API",
  "sandbox:injectFault": "simulated provider: tests and demos",
  "sandbox:listResources": "simulated provider",
};

/**
 * Hot paths whose runs may collide only with one another. The rate limits' screening
 * (security:screenRequest) shares its buckets between requests by design: the webhook's global
 * bucket (sharded), one address's bucket. It is its own small transaction, apart from the
 * intake it guards, so a collision retries only the screening, and it reads no job's rows.
 *
 * Hot paths whose runs may collide only with one another. Admission keeps its running count
 * in a document only admission writes, so two of its runs at once serialize by OCC (one
 * retries and sees the other's result). That is its design, a single logical admitter; what
 * it must never do is read what a creation or a completion writes, which the test checks.
 */
export const SERIAL_PATHS: readonly string[] = ["provisioning:admitQueuedJobs", "security:screenRequest"];

export const isSerialPair = (a: TransactionRecord, b: TransactionRecord) =>
  baseKind(a) === baseKind(b) && SERIAL_PATHS.includes(baseKind(a));

const JOBS = "provisioningJobs";

/** The app function a transaction ran for: its outermost app query or mutation (a workpool's
 * `complete` that calls onStepComplete inline counts as onStepComplete). */
export function baseKind(tx: TransactionRecord): string {
  const app = tx.frames.find((f) => f.component === APP_COMPONENT);
  if (app) return app.udfPath;
  if (tx.root) return `${tx.root.component}/${tx.root.udfPath}`;
  return "(t.run or convex-test bookkeeping)";
}

type Row = Record<string, Value | undefined> & { _id: string };

/**
 * Who owns each row, from the database after the burst: a job owns its document, its
 * instance, the instance's customer, the Stripe events of its checkout session, and any row
 * that names the job or the instance (audit rows).
 */
export async function loadOwnership(t: TestBackend) {
  const rows = await t.run(async (ctx) => ({
    jobs: await ctx.db.query("provisioningJobs").collect(),
    instances: await ctx.db.query("instances").collect(),
    customers: await ctx.db.query("customers").collect(),
    stripeEvents: await ctx.db.query("stripeEvents").collect(),
  }));
  const jobsOfInstance = new Map<string, string[]>();
  for (const job of rows.jobs) jobsOfInstance.set(job.instanceId, [...(jobsOfInstance.get(job.instanceId) ?? []), job._id]);
  const instanceOfSession = new Map(rows.instances.map((i) => [i.checkoutSessionId, i._id as string]));
  const jobsOfCustomer = new Map<string, string[]>();
  for (const i of rows.instances) {
    jobsOfCustomer.set(i.customerId, [...(jobsOfCustomer.get(i.customerId) ?? []), ...(jobsOfInstance.get(i._id) ?? [])]);
  }
  const snapshot = new Map<string, Row[]>(Object.entries(rows).map(([table, list]) => [table === "jobs" ? JOBS : table, list as unknown as Row[]]));
  const byId = new Map<string, Row>();
  for (const list of snapshot.values()) for (const row of list) byId.set(row._id, row);

  const ownersOfRow = (table: string, row: Row | null | undefined, id: string): string[] => {
    if (table === JOBS) return [id];
    if (table === "instances") return jobsOfInstance.get(id) ?? [];
    if (table === "customers") return jobsOfCustomer.get(id) ?? [];
    if (!row) return [];
    if (typeof row.jobId === "string") return [row.jobId];
    if (typeof row.instanceId === "string") return jobsOfInstance.get(row.instanceId) ?? [];
    if (typeof row.checkoutSessionId === "string") {
      const instance = instanceOfSession.get(row.checkoutSessionId);
      return instance ? (jobsOfInstance.get(instance) ?? []) : [];
    }
    return [];
  };

  /**
   * The job a transaction belongs to: the job it inserts (event processing), else the one job
   * whose rows it reads or writes. Reading or writing several jobs' rows (an admission or a
   * sweep) belongs to none: such a transaction is its own kind and is checked against all.
   */
  const memo = new WeakMap<TransactionRecord, Owner>();
  function ownerOf(tx: TransactionRecord): Owner {
    let owner = memo.get(tx);
    if (!owner) memo.set(tx, (owner = computeOwner(tx)));
    return owner;
  }
  function computeOwner(tx: TransactionRecord): Owner {
    const app = (x: { component: string }) => x.component === APP_COMPONENT;
    const inserted = tx.writes.filter((w) => app(w) && w.table === JOBS && w.before === null).map((w) => w.id);
    if (inserted.length === 1) return { kind: "job", id: inserted[0] };
    const owners = new Set<string>();
    const add = (ids: string[]) => {
      // A row shared by several jobs (a returning customer's row) says nothing about which.
      if (ids.length === 1) owners.add(ids[0]);
    };
    for (const r of tx.reads.filter(app)) add(ownersOfRow(r.table, byId.get(r.id), r.id));
    for (const w of tx.writes.filter(app)) add(ownersOfRow(w.table, w.after ?? w.before, w.id));
    for (const range of tx.ranges.filter(app)) {
      for (const id of range.returned) add(ownersOfRow(range.table, byId.get(id), id));
      // A range pinned by equality to one job's rows (the status page's session id, say)
      // belongs to that job even when it found nothing yet.
      if (range.index !== null && range.range.some((r) => r.type === "Eq")) {
        const matched = (snapshot.get(range.table) ?? []).filter((row) => inRange(row, range.range));
        const jobs = new Set(matched.flatMap((row) => ownersOfRow(range.table, row, row._id)));
        if (matched.length > 0 && jobs.size === 1) add([...jobs]);
      }
    }
    if (owners.size === 1) return { kind: "job", id: [...owners][0] };
    if (owners.size === 0) return { kind: "none" };
    return { kind: "several", ids: [...owners] };
  }

  /** The kind used for pairing: a transaction over several jobs is its own kind. */
  function kindOf(tx: TransactionRecord): string {
    const base = baseKind(tx);
    return ownerOf(tx).kind === "several" ? `${base} [several jobs]` : base;
  }

  /** The one job a written row belongs to, or null (shared rows: circuits, a returning customer). */
  function documentOwner(write: WriteRecord): string | null {
    const owners = ownersOfRow(write.table, write.after ?? write.before, write.id);
    return owners.length === 1 ? owners[0] : null;
  }

  return { ownerOf, kindOf, documentOwner, jobs: rows.jobs };
}

export const isHot = (kind: string) =>
  (HOT_PATHS.required as readonly string[]).includes(kind) || (HOT_PATHS.optional as readonly string[]).includes(kind);
