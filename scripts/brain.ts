// `npm run brain -- <command>`: the operator CLI. Every command is one or a few calls to Brain's
// HTTP API (docs/http-api.md) at BRAIN_URL with the bearer ADMIN_API_TOKEN; it never reads the
// database or a provider itself. Human output is short aligned tables; --json prints the API's
// JSON as is. Exit codes: 0 done, 1 an API error (its code and message on stderr) or a failed
// job, 2 bad usage. Reference: docs/cli.md.
import { parseArgs } from "node:util";

export const USAGE = `Usage: npm run brain -- <command> [args] [--json]

Commands:
  status <sessionId>                       a checkout session's provisioning status and steps
  jobs [--status S] [--limit N] [--cursor C]
                                           jobs, newest first (S: queued, running, succeeded, failed)
  retry <jobId> [--wait] [--timeout SEC]   retry a failed job; --wait follows its steps to the end
  cancel <jobId>                           cancel a queued or running job
  health [<instanceId>] [--status S] [--limit N] [--cursor C]
                                           the fleet's health, or check one instance now
  incidents [--status open|resolved] [--instance ID] [--limit N]
                                           health incidents, newest first
  orphans [--cleanup [--dry-run]]          scan for orphaned resources; --cleanup deletes them
  dead-letter                              jobs that failed for good and wait for an operator
  circuits                                 the providers' circuit breakers
  metrics [--from T] [--to T]              provisioning KPIs (T: epoch ms, ISO date, or 30m/24h/7d ago;
                                           default the last 24 h)
  deliveries <instanceId> [--limit N]      Stripe events forwarded to one tenant

Options:
  --json      print the API's JSON (one document on stdout)
  --help      this text

Environment:
  BRAIN_URL        Brain's HTTP base, e.g. http://127.0.0.1:8787 or https://<deployment>.convex.site
  ADMIN_API_TOKEN  the admin bearer token

Exit codes: 0 success, 1 API error or failed job, 2 bad usage.
`;

/** Bad usage: the message, then the usage text, exit 2. */
export class UsageError extends Error {}

/** An answer other than 2xx, or no answer: code and message as the API gave them. */
export class ApiError extends Error {
  constructor(
    readonly status: number | null,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Flags = {
  json: boolean;
  wait: boolean;
  cleanup: boolean;
  "dry-run": boolean;
  status?: string;
  limit?: string;
  cursor?: string;
  instance?: string;
  from?: string;
  to?: string;
  timeout?: string;
  interval?: string;
};

type Io = { out: (line: string) => void; err: (line: string) => void };
type Env = Record<string, string | undefined>;
type Json = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------
// Formatting

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function table(headers: string[], rows: (string | number | undefined | null)[][]): string[] {
  const cells = [headers, ...rows.map((row) => row.map((cell) => (cell === undefined || cell === null ? "-" : String(cell))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? "").length)));
  return cells.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd(),
  );
}

/** An epoch-ms time as `2026-01-05 10:00:30Z`, or "-". */
export function time(ms: unknown): string {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "-";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "Z");
}

/** Milliseconds as `850 ms`, `2.3 s`, `4 min 5 s`, `3 h 2 min`, or "-". */
export function duration(ms: unknown): string {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "-";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 60) return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** `label  value` lines, the values aligned. */
const pairs = (rows: [string, string][]) => {
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`);
};
const percent = (fraction: unknown) => (typeof fraction === "number" && Number.isFinite(fraction) ? `${(fraction * 100).toFixed(1)}%` : "-");
const truncate = (text: unknown, max = 60) => {
  if (typeof text !== "string") return undefined;
  const line = text.split("\n")[0]!;
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
};
const list = (value: unknown) => (Array.isArray(value) && value.length > 0 ? value.join(",") : "-");

/**
 * `--from` / `--to`: epoch milliseconds, an ISO-8601 date, or a time ago (`30m`, `24h`, `7d`).
 * Returns epoch milliseconds.
 */
export function parseTime(name: string, raw: string, now: number): number {
  if (/^\d+$/.test(raw)) return Number(raw);
  const ago = /^(\d+)(m|h|d)$/.exec(raw);
  if (ago) return now - Number(ago[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[ago[2] as "m" | "h" | "d"];
  const parsed = Date.parse(raw);
  if (Number.isNaN(parsed)) throw new UsageError(`--${name} must be epoch milliseconds, an ISO-8601 date, or a time ago such as 24h`);
  return parsed;
}

// ---------------------------------------------------------------------------------------------
// The API

export class Client {
  constructor(
    readonly baseUrl: string,
    readonly token: string,
  ) {}

  async call(method: "GET" | "POST", path: string, body?: unknown): Promise<Json> {
    const url = `${this.baseUrl.replace(/\/+$/, "")}${path}`;
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: {
          Authorization: `Bearer ${this.token}`,
          Accept: "application/json",
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new ApiError(null, "UNREACHABLE", `cannot reach ${this.baseUrl}: ${cause?.code ?? cause?.message ?? String(error)}`);
    }
    const text = await response.text();
    let parsed: unknown = undefined;
    try {
      parsed = text === "" ? {} : JSON.parse(text);
    } catch {
      // Not JSON: a proxy's page, or a path Brain does not serve (the router's plain 404).
    }
    if (!response.ok) {
      const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
      if (error && typeof error.code === "string") {
        throw new ApiError(response.status, error.code, typeof error.message === "string" ? error.message : "");
      }
      throw new ApiError(response.status, `HTTP_${response.status}`, truncate(text.trim(), 200) || response.statusText || "no body");
    }
    if (parsed === undefined || typeof parsed !== "object" || parsed === null) {
      throw new ApiError(response.status, "BAD_RESPONSE", `expected JSON from ${method} ${path}, got: ${truncate(text.trim(), 120) ?? "nothing"}`);
    }
    return parsed as Json;
  }
}

const enc = encodeURIComponent;
const query = (params: Record<string, string | number | undefined>) => {
  const entries = Object.entries(params).filter((entry): entry is [string, string | number] => entry[1] !== undefined);
  return entries.length === 0 ? "" : `?${entries.map(([key, value]) => `${key}=${enc(String(value))}`).join("&")}`;
};

// ---------------------------------------------------------------------------------------------
// Commands: each prints its human output and returns the exit code (or the JSON to print).

type Context = { api: Client; flags: Flags; args: string[]; io: Io; now: () => number; sleep: (ms: number) => Promise<void> };
type Result = { json: unknown; lines: string[]; code?: number };

function one(args: string[], name: string): string {
  if (args.length !== 1 || !args[0]) throw new UsageError(`expected exactly one <${name}>`);
  return args[0];
}
function none(args: string[]) {
  if (args.length > 0) throw new UsageError(`unexpected argument ${args[0]}`);
}

type Step = { name: string; status: string; attempts: number; startedAt?: number; finishedAt?: number; nextAttemptAt?: number; waitingForCircuit?: boolean; lastError?: { class: string; message: string } };
type JobError = { step: string; class: string; message: string };

function stepRows(steps: Step[]) {
  return table(
    ["STEP", "STATUS", "ATTEMPTS", "TOOK", "ERROR"],
    steps.map((step) => [
      step.name,
      step.waitingForCircuit ? `${step.status} (circuit open)` : step.status,
      step.attempts,
      step.startedAt !== undefined && step.finishedAt !== undefined ? duration(step.finishedAt - step.startedAt) : undefined,
      step.lastError && step.status !== "succeeded" ? `${step.lastError.class}: ${truncate(step.lastError.message)}` : undefined,
    ]),
  );
}

const errorText = (error: JobError | undefined) => (error ? `${error.step} (${error.class}): ${truncate(error.message, 120)}` : undefined);

const commands: Record<string, (c: Context) => Promise<Result>> = {
  async status({ api, args }) {
    const sessionId = one(args, "sessionId");
    const view = await api.call("GET", `/status${query({ session_id: sessionId })}`);
    const progress = view.progress as { currentStep: number; totalSteps: number; percent: number } | undefined;
    const lines = [
      `status    ${String(view.status)}${progress ? `  ${progress.percent}% (${progress.currentStep}/${progress.totalSteps} steps)` : ""}`,
      `job       ${String(view.jobId ?? "-")}`,
      `instance  ${String(view.instanceId ?? "-")}`,
    ];
    if (view.instanceUrl) lines.push(`url       ${String(view.instanceUrl)}`);
    if (view.error) lines.push(`error     ${errorText(view.error as JobError)}`);
    const steps = (view.steps ?? []) as Step[];
    if (steps.length > 0) lines.push("", ...stepRows(steps));
    return { json: view, lines };
  },

  async jobs({ api, args, flags }) {
    none(args);
    const body = await api.call("GET", `/admin/jobs${query({ status: flags.status, limit: flags.limit, cursor: flags.cursor })}`);
    const jobs = body.jobs as (Json & { error?: JobError })[];
    const lines =
      jobs.length === 0
        ? ["No jobs."]
        : table(
            ["JOB", "INSTANCE", "KIND", "STATUS", "STEPS", "RETRIES", "CREATED", "ERROR"],
            jobs.map((job) => [
              job.jobId as string,
              job.instanceId as string,
              job.kind as string,
              job.status as string,
              `${String(job.currentStep)}/${String(job.totalSteps)}`,
              job.retryCount as number,
              time(job.createdAt),
              errorText(job.error),
            ]),
          );
    if (body.continueCursor) lines.push(`More: npm run brain -- jobs --cursor '${String(body.continueCursor)}'`);
    return { json: body, lines };
  },

  async retry(c) {
    const jobId = one(c.args, "jobId");
    const timing = c.flags.wait ? { timeoutMs: positive("timeout", c.flags.timeout, 600) * 1000, intervalMs: positive("interval", c.flags.interval, 500) } : null;
    // Under --wait, the job before the retry: what it changes is then printed, however fast it runs.
    const before = timing ? await c.api.call("GET", `/admin/jobs/${enc(jobId)}`) : null;
    const answer = await c.api.call("POST", `/retry-provisioning/${enc(jobId)}`);
    const started = `Job ${String(answer.jobId)} retried (retry ${String(answer.retryCount)}): ${String(answer.status)}`;
    if (!timing || !before) return { json: answer, lines: [started] };
    // Progress goes to stdout, or to stderr under --json so stdout holds only the final job.
    const progress = c.flags.json ? c.io.err : c.io.out;
    progress(started);
    const job = await follow(c, before as FollowedJob, timing, progress);
    return { json: job, lines: [], code: job.status === "succeeded" ? 0 : 1 };
  },

  async cancel({ api, args }) {
    const jobId = one(args, "jobId");
    const answer = await api.call("POST", `/cancel-provisioning/${enc(jobId)}`);
    return { json: answer, lines: [`Job ${String(answer.jobId)} cancelled: it is failed (class cancelled) and its resources are being cleaned up`] };
  },

  async health({ api, args, flags }) {
    if (args.length > 1) throw new UsageError(`unexpected argument ${args[1]}`);
    if (args.length === 1) {
      const report = await api.call("GET", `/instance-health/${enc(args[0]!)}`);
      const incident = report.incident as (Json & { failing?: string[] }) | null | undefined;
      const lines = [
        `instance   ${String(report.instanceId)}`,
        `now        ${String(report.overall ?? "-")}${report.skipped ? ` (${String(report.skipped)})` : ""} at ${time(report.checkedAt)}`,
        `confirmed  ${String(report.healthStatus ?? "-")}${report.unhealthySince ? ` since ${time(report.unhealthySince)}` : ""}; last round ${time(report.lastHealthCheckAt)}`,
        `incident   ${incident ? `${String(incident.incidentId)} ${String(incident.severity)} since ${time(incident.since)} (failing: ${list(incident.failing)})` : "none"}`,
      ];
      const resources = (report.resources ?? []) as Json[];
      if (resources.length > 0) {
        lines.push("", ...table(["RESOURCE", "PROVIDER", "ID", "OK", "DETAIL"], resources.map((r) => [r.resource as string, r.provider as string, r.id as string, r.ok ? "yes" : "NO", truncate(r.detail)])));
      }
      return { json: report, lines };
    }
    const view = await api.call("GET", `/admin/health${query({ status: flags.status, limit: flags.limit, cursor: flags.cursor })}`);
    const counts = (view.counts ?? {}) as Record<string, number>;
    const instances = (view.instances ?? []) as Json[];
    const lines = [
      `fleet     ${Object.entries(counts).map(([status, n]) => `${status} ${n}`).join(", ")}`,
      `coverage  ${percent(view.coverage)} checked within the last interval`,
      "",
      ...(instances.length === 0
        ? ["No instances match."]
        : table(
            ["INSTANCE", "PLAN", "HEALTH", "LAST CHECK", "UNHEALTHY SINCE", "URL"],
            instances.map((i) => [i.instanceId as string, i.plan as string, i.healthStatus as string, time(i.lastHealthCheckAt), time(i.unhealthySince), i.url as string]),
          )),
    ];
    if (view.continueCursor) lines.push(`More: npm run brain -- health --cursor '${String(view.continueCursor)}'`);
    return { json: view, lines };
  },

  async incidents({ api, args, flags }) {
    none(args);
    const body = await api.call("GET", `/admin/incidents${query({ status: flags.status, instanceId: flags.instance, limit: flags.limit })}`);
    const incidents = body.incidents as Json[];
    const lines =
      incidents.length === 0
        ? ["No incidents."]
        : table(
            ["INCIDENT", "INSTANCE", "STATUS", "SEVERITY", "OPENED", "ALERTED", "RESOLVED", "FAILING"],
            incidents.map((i) => [i.incidentId as string, i.instanceId as string, i.status as string, i.severity as string, time(i.openedAt), time(i.alertedAt), time(i.resolvedAt), list(i.failing)]),
          );
    return { json: body, lines };
  },

  async orphans({ api, args, flags, io }) {
    none(args);
    if (flags["dry-run"] && !flags.cleanup) throw new UsageError("--dry-run goes with --cleanup");
    // A scan lists every provider's resources: it can take a while.
    const progress = flags.json ? io.err : io.out;
    const orphanRows = (rows: Json[], withError = false) =>
      table(
        ["PROVIDER", "RESOURCE", "NAME", ...(withError ? ["ERROR"] : [])],
        rows.map((o) => [o.provider as string, o.resourceId as string, o.name as string, ...(withError ? [truncate(o.message, 80)] : [])]),
      );
    if (!flags.cleanup) {
      progress("Scanning every provider for orphaned resources…");
      const body = await api.call("GET", "/admin/orphans");
      const orphans = body.orphans as Json[];
      return { json: body, lines: orphans.length === 0 ? ["No orphans."] : [`${orphans.length} orphaned:`, ...orphanRows(orphans)] };
    }
    const dryRun = flags["dry-run"];
    progress(dryRun ? "Scanning for orphans (dry run: nothing is deleted)…" : "Scanning for orphans and deleting each one found…");
    const body = await api.call("POST", "/admin/orphans/cleanup", { dryRun });
    const [deleted, wouldDelete, failed] = [body.deleted, body.wouldDelete, body.failed] as Json[][];
    const lines: string[] = [];
    if (dryRun) lines.push(wouldDelete!.length === 0 ? "No orphans: nothing would be deleted." : `Would delete ${wouldDelete!.length}:`, ...(wouldDelete!.length ? orphanRows(wouldDelete!) : []));
    else lines.push(`Deleted ${deleted!.length}.`, ...(deleted!.length ? orphanRows(deleted!) : []));
    if (failed!.length > 0) lines.push(`Failed ${failed!.length}:`, ...orphanRows(failed!, true));
    return { json: body, lines, code: failed!.length > 0 ? 1 : 0 };
  },

  async "dead-letter"({ api, args }) {
    none(args);
    const body = await api.call("GET", "/admin/dead-letter");
    const jobs = body.jobs as Json[];
    const lines =
      jobs.length === 0
        ? ["The dead letter is empty."]
        : table(
            ["JOB", "INSTANCE", "KIND", "STEP", "CLASS", "FAILED", "WAITING", "MESSAGE"],
            jobs.map((j) => [j.jobId as string, j.instanceId as string, j.kind as string, j.step as string, j.class as string, time(j.failedAt), duration(j.waitingMs), truncate(j.message)]),
          );
    if (jobs.length > 0) lines.push("Retry one: npm run brain -- retry <jobId> --wait");
    return { json: body, lines };
  },

  async circuits({ api, args }) {
    none(args);
    const body = await api.call("GET", "/admin/circuits");
    const circuits = body.circuits as Json[];
    return {
      json: body,
      lines: table(["PROVIDER", "STATE", "FAILURES", "OPENED"], circuits.map((c) => [c.provider as string, c.state as string, c.failures as number, time(c.openedAt)])),
    };
  },

  async metrics({ api, args, flags, now }) {
    none(args);
    const to = flags.to === undefined ? now() : parseTime("to", flags.to, now());
    const from = flags.from === undefined ? to - 86_400_000 : parseTime("from", flags.from, now());
    if (from > to) throw new UsageError("--from must not be after --to");
    const m = await api.call("GET", `/admin/metrics${query({ from, to })}`);
    const jobs = (m.jobs ?? {}) as Record<string, number>;
    const d = (m.durationMs ?? {}) as Record<string, number>;
    const counts = (value: unknown) => {
      const entries = Object.entries((value ?? {}) as Record<string, number>);
      return entries.length === 0 ? "none" : entries.map(([key, n]) => `${key} ${n}`).join(", ");
    };
    const lines = pairs([
      ["range", `${time(m.from ?? from)} → ${time(m.to ?? to)}`],
      ["jobs", `started ${jobs.started ?? "-"}, succeeded ${jobs.succeeded ?? "-"}, failed ${jobs.failed ?? "-"}`],
      ["success rate", percent(m.successRate)],
      ["time to ready", `avg ${duration(d.avg)}, p50 ${duration(d.p50)}, p95 ${duration(d.p95)}`],
      ["retries per job", typeof m.retriesPerJob === "number" ? m.retriesPerJob.toFixed(2) : "-"],
      ["auto-recovery", percent(m.autoRecoveryRate)],
      ["MTTD / MTTR", `${duration(m.mttdMs)} / ${duration(m.mttrMs)}`],
      ["health coverage", percent(m.healthCoverage)],
      ["failures by step", counts(m.failuresByStep)],
      ["failures by class", counts(m.failuresByClass)],
    ]);
    const perStep = Object.entries((m.stepDurationMs ?? {}) as Record<string, { avg?: number; p95?: number }>);
    if (perStep.length > 0) lines.push("", ...table(["STEP", "AVG", "P95"], perStep.map(([step, s]) => [step, duration(s.avg), duration(s.p95)])));
    return { json: m, lines };
  },

  async deliveries({ api, args, flags }) {
    const instanceId = one(args, "instanceId");
    const body = await api.call("GET", `/admin/deliveries${query({ instanceId, limit: flags.limit })}`);
    const deliveries = body.deliveries as Json[];
    const lines =
      deliveries.length === 0
        ? ["No deliveries."]
        : table(
            ["DELIVERY", "EVENT", "TYPE", "STATUS", "ATTEMPTS", "LAST HTTP", "NEXT ATTEMPT", "ERROR"],
            deliveries.map((x) => [x.deliveryId as string, x.eventId as string, x.eventType as string, x.status as string, x.attempts as number, x.lastStatus as number | undefined, x.status === "pending" ? time(x.nextAttemptAt) : undefined, truncate(x.lastError)]),
          );
    return { json: body, lines };
  },
};

type FollowedJob = Json & { jobId: string; status: string; steps: Step[]; error?: JobError };

/** How a step reads in `retry --wait`'s progress: a change of this text is printed. */
function stepState(step: Step): string {
  return (
    step.status +
    (step.waitingForCircuit ? " (circuit open)" : "") +
    (step.attempts > 1 && step.status !== "pending" ? ` (attempt ${step.attempts})` : "") +
    ((step.status === "retrying" || step.status === "failed") && step.lastError ? `: ${step.lastError.class}: ${truncate(step.lastError.message)}` : "")
  );
}

/**
 * Polls GET /admin/jobs/:jobId until the job succeeds or fails, printing each change of a step
 * (and of the job) since `before`, the job as it was before the retry. Gives up after the timeout
 * with a TIMEOUT error; the job goes on.
 */
async function follow(
  c: Context,
  before: FollowedJob,
  { timeoutMs, intervalMs }: { timeoutMs: number; intervalMs: number },
  say: (line: string) => void,
): Promise<FollowedJob> {
  const started = c.now();
  const seen = new Map(before.steps.map((step) => [step.name, stepState(step)]));
  let jobStatus = before.status;
  for (;;) {
    const job = (await c.api.call("GET", `/admin/jobs/${enc(before.jobId)}`)) as FollowedJob;
    const done = job.steps.filter((step) => step.status === "succeeded").length;
    const prefix = `[${String(Math.round((done / job.steps.length) * 100)).padStart(3)}%] ${done}/${job.steps.length}`;
    for (const step of job.steps) {
      const state = stepState(step);
      if (seen.get(step.name) !== state) say(`${prefix} ${step.name} ${state}`);
      seen.set(step.name, state);
    }
    if (job.status !== jobStatus) say(`${prefix} job ${job.status}`);
    jobStatus = job.status;
    const elapsed = duration(c.now() - started);
    if (job.status === "succeeded") {
      say(`Job ${job.jobId} succeeded after ${elapsed}`);
      return job;
    }
    if (job.status === "failed") {
      say(`Job ${job.jobId} failed after ${elapsed}: ${errorText(job.error) ?? "no error recorded"}`);
      return job;
    }
    if (c.now() - started > timeoutMs) throw new ApiError(null, "TIMEOUT", `job ${job.jobId} is still ${job.status} after ${elapsed}`);
    await c.sleep(intervalMs);
  }
}

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!(Number.isFinite(value) && value > 0)) throw new UsageError(`--${name} must be a positive number`);
  return value;
}

// ---------------------------------------------------------------------------------------------

/** Runs one command line; returns the exit code. */
export async function main(argv: string[], env: Env = process.env, io: Io = defaultIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: "boolean", default: false },
        wait: { type: "boolean", default: false },
        cleanup: { type: "boolean", default: false },
        "dry-run": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
        status: { type: "string" },
        limit: { type: "string" },
        cursor: { type: "string" },
        instance: { type: "string" },
        from: { type: "string" },
        to: { type: "string" },
        timeout: { type: "string" },
        interval: { type: "string" },
      },
    });
  } catch (error) {
    return usage(io, (error as Error).message);
  }
  const { help, ...flags } = parsed.values;
  const [name, ...args] = parsed.positionals;
  if (help) {
    io.out(USAGE.trimEnd());
    return 0;
  }
  if (!name) return usage(io, "no command given");
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) return usage(io, `unknown command "${name}"`);
  const missing = ["BRAIN_URL", "ADMIN_API_TOKEN"].filter((key) => !env[key]);
  if (missing.length > 0) return usage(io, `set ${missing.join(" and ")} in the environment`);
  if (!/^https?:\/\//.test(env.BRAIN_URL!)) return usage(io, `BRAIN_URL must start with http:// or https://, got "${env.BRAIN_URL}"`);

  const context: Context = {
    api: new Client(env.BRAIN_URL!, env.ADMIN_API_TOKEN!),
    flags: flags as Flags,
    args,
    io,
    now: Date.now,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  };
  try {
    const result = await command(context);
    if (flags.json) io.out(JSON.stringify(result.json, null, 2));
    else for (const line of result.lines) io.out(line);
    return result.code ?? 0;
  } catch (error) {
    if (error instanceof UsageError) return usage(io, error.message);
    if (error instanceof ApiError) {
      // A body without Brain's error shape (a path it does not serve) has only its HTTP status.
      const http = error.status && !error.code.startsWith("HTTP_") ? ` (HTTP ${error.status})` : "";
      io.err(`brain: ${error.code}${http}: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

function usage(io: Io, message: string): number {
  io.err(`brain: ${message}\n\n${USAGE.trimEnd()}`);
  return 2;
}

const defaultIo: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

// Run when executed (tsx scripts/brain.ts), not when imported by a test.
if (process.argv[1] && /brain\.ts$/.test(process.argv[1])) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`brain: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
