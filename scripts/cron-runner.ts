// Runs the jobs a `cronJobs()` object declares (convex/crons.ts) on real timers, for the
// embedded backend, where convex-test runs scheduled functions but never crons. It reads
// whatever the object declares, so a new entry in crons.ts runs here without a change.
//
// As on Convex, a job never overlaps itself: a run that comes due while the previous one is
// still going is skipped. Calendar schedules (hourly, daily, weekly, monthly, cron strings)
// run at their next wall-clock time in UTC.
import { jsonToConvex, type Value } from "convex/values";

export type CronSchedule =
  | { type: "interval"; seconds?: number; minutes?: number; hours?: number }
  | { type: "hourly"; minuteUTC?: number }
  | { type: "daily"; hourUTC: number; minuteUTC?: number }
  | { type: "weekly"; dayOfWeek: string; hourUTC: number; minuteUTC?: number }
  | { type: "monthly"; day: number; hourUTC: number; minuteUTC?: number }
  | { type: "cron"; cron: string };

/** One entry of `Crons.crons`, as convex/server's cronJobs() stores it. */
export type CronSpec = { name: string; args: unknown[]; schedule: CronSchedule };
export type CronJobs = { crons: Record<string, CronSpec> };

/** One due run: the cron's identifier, its function ("module:export") and its arguments. */
export type CronRun = { identifier: string; functionName: string; args: Record<string, Value> };

export type CronRunnerOptions = {
  /** A run that threw or rejected (the runner goes on). */
  onError?: (run: CronRun, error: unknown) => void;
  /** A run skipped because the previous run of the same job was still going. */
  onSkip?: (run: CronRun) => void;
  /** A job the runner cannot schedule (an unsupported schedule); it is left out. */
  onInvalid?: (identifier: string, error: unknown) => void;
};

export type CronRunner = {
  /** The jobs being run (a job with an unsupported schedule is left out). */
  readonly jobs: readonly { identifier: string; functionName: string; schedule: CronSchedule }[];
  /** Clears every timer; resolves once the runs in flight have finished. */
  stop(): Promise<void>;
};

const MINUTE_MS = 60_000;
// setTimeout fires at once beyond this (about 24.8 days); a monthly job waits in steps.
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const DAYS_OF_WEEK = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

export function startCronRunner(
  jobs: CronJobs,
  run: (job: CronRun) => Promise<unknown>,
  options: CronRunnerOptions = {},
): CronRunner {
  const timers = new Map<string, ReturnType<typeof setTimeout>>();
  const inFlight = new Map<string, Promise<void>>();
  const scheduled: { identifier: string; functionName: string; schedule: CronSchedule }[] = [];
  let stopped = false;

  const start = (identifier: string, spec: CronSpec) => {
    const job: CronRun = {
      identifier,
      functionName: spec.name,
      args: (jsonToConvex((spec.args[0] ?? {}) as never) ?? {}) as Record<string, Value>,
    };
    const arm = (at: number) => {
      if (stopped) return;
      timers.set(identifier, setTimeout(() => fire(at), Math.min(Math.max(at - Date.now(), 0), MAX_TIMEOUT_MS)));
    };
    const fire = (at: number) => {
      if (stopped) return;
      if (Date.now() < at) return arm(at);
      if (inFlight.has(identifier)) {
        options.onSkip?.(job);
      } else {
        const running = (async () => run(job))()
          .then(
            () => undefined,
            (error: unknown) => options.onError?.(job, error),
          )
          .finally(() => inFlight.delete(identifier));
        inFlight.set(identifier, running);
      }
      arm(nextRunAt(spec.schedule, Math.max(at, Date.now())));
    };
    arm(nextRunAt(spec.schedule, Date.now()));
  };

  for (const [identifier, spec] of Object.entries(jobs.crons)) {
    try {
      nextRunAt(spec.schedule, Date.now());
    } catch (error) {
      options.onInvalid?.(identifier, error);
      continue;
    }
    scheduled.push({ identifier, functionName: spec.name, schedule: spec.schedule });
    start(identifier, spec);
  }

  return {
    jobs: scheduled,
    async stop() {
      stopped = true;
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
      await Promise.all(inFlight.values());
    },
  };
}

/** The first time strictly after `after` (ms since the epoch) that the schedule is due. */
export function nextRunAt(schedule: CronSchedule, after: number): number {
  if (schedule.type === "interval") return after + intervalMs(schedule);
  return nextCronTime(parseCron(cronStringOf(schedule)), after);
}

/** A schedule in words: "every 1 min", "hourly at :17 UTC", "cron 5 4 * * *". */
export function describeSchedule(schedule: CronSchedule): string {
  const minute = (m: number | undefined) => String(m ?? 0).padStart(2, "0");
  switch (schedule.type) {
    case "interval": {
      const ms = intervalMs(schedule);
      return ms % MINUTE_MS === 0 ? `every ${ms / MINUTE_MS} min` : `every ${ms / 1000} s`;
    }
    case "hourly":
      return `hourly at :${minute(schedule.minuteUTC)} UTC`;
    case "daily":
      return `daily at ${String(schedule.hourUTC).padStart(2, "0")}:${minute(schedule.minuteUTC)} UTC`;
    case "weekly":
      return `${schedule.dayOfWeek}s at ${String(schedule.hourUTC).padStart(2, "0")}:${minute(schedule.minuteUTC)} UTC`;
    case "monthly":
      return `monthly on day ${schedule.day} at ${String(schedule.hourUTC).padStart(2, "0")}:${minute(schedule.minuteUTC)} UTC`;
    case "cron":
      return `cron ${schedule.cron} (UTC)`;
  }
}

function intervalMs(schedule: Extract<CronSchedule, { type: "interval" }>): number {
  const ms = (schedule.seconds ?? 0) * 1000 + (schedule.minutes ?? 0) * MINUTE_MS + (schedule.hours ?? 0) * 60 * MINUTE_MS;
  if (!(ms > 0)) throw new Error(`invalid interval schedule ${JSON.stringify(schedule)}`);
  return ms;
}

/** A calendar schedule as a five-field cron string (minute hour day-of-month month day-of-week). */
function cronStringOf(schedule: Exclude<CronSchedule, { type: "interval" }>): string {
  switch (schedule.type) {
    case "cron":
      return schedule.cron;
    case "hourly":
      return `${schedule.minuteUTC ?? 0} * * * *`;
    case "daily":
      return `${schedule.minuteUTC ?? 0} ${schedule.hourUTC} * * *`;
    case "weekly": {
      const day = DAYS_OF_WEEK.indexOf(schedule.dayOfWeek.toLowerCase());
      if (day < 0) throw new Error(`invalid day of week "${schedule.dayOfWeek}"`);
      return `${schedule.minuteUTC ?? 0} ${schedule.hourUTC} * * ${day}`;
    }
    case "monthly":
      return `${schedule.minuteUTC ?? 0} ${schedule.hourUTC} ${schedule.day} * *`;
  }
}

type CronFields = {
  minutes: Set<number>;
  hours: Set<number>;
  days: Set<number>;
  months: Set<number>;
  weekdays: Set<number>;
  /** Both day fields restricted: a day matches either (cron's rule). */
  dayOr: boolean;
};

/** Parses numeric cron fields: `*`, `n`, `a-b`, `*\/s`, `a-b/s` and lists of them. */
export function parseCron(expression: string): CronFields {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5) throw new Error(`cron string "${expression}" must have five fields`);
  const [minute, hour, day, month, weekday] = fields as [string, string, string, string, string];
  const weekdays = parseField(weekday, 0, 7, expression);
  if (weekdays.delete(7)) weekdays.add(0);
  return {
    minutes: parseField(minute, 0, 59, expression),
    hours: parseField(hour, 0, 23, expression),
    days: parseField(day, 1, 31, expression),
    months: parseField(month, 1, 12, expression),
    weekdays,
    dayOr: !day.startsWith("*") && !weekday.startsWith("*"),
  };
}

function parseField(field: string, min: number, max: number, expression: string): Set<number> {
  const values = new Set<number>();
  for (const part of field.split(",")) {
    const match = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
    if (!match) throw new Error(`unsupported cron field "${field}" in "${expression}"`);
    const low = match[1] === "*" ? min : Number(match[2]);
    const high = match[1] === "*" ? max : match[3] !== undefined ? Number(match[3]) : match[4] ? max : low;
    const step = match[4] ? Number(match[4]) : 1;
    if (low < min || high > max || low > high || step < 1) {
      throw new Error(`cron field "${field}" out of range ${min}-${max} in "${expression}"`);
    }
    for (let value = low; value <= high; value += step) values.add(value);
  }
  return values;
}

/** The next whole UTC minute after `after` that the fields match (within about five years). */
function nextCronTime(fields: CronFields, after: number): number {
  const date = new Date(Math.floor(after / MINUTE_MS) * MINUTE_MS + MINUTE_MS);
  const limit = after + 5 * 366 * 24 * 60 * MINUTE_MS;
  while (date.getTime() <= limit) {
    if (!fields.months.has(date.getUTCMonth() + 1)) {
      date.setUTCMonth(date.getUTCMonth() + 1, 1);
      date.setUTCHours(0, 0);
      continue;
    }
    const dayOfMonth = fields.days.has(date.getUTCDate());
    const dayOfWeek = fields.weekdays.has(date.getUTCDay());
    if (!(fields.dayOr ? dayOfMonth || dayOfWeek : dayOfMonth && dayOfWeek)) {
      date.setUTCDate(date.getUTCDate() + 1);
      date.setUTCHours(0, 0);
      continue;
    }
    if (!fields.hours.has(date.getUTCHours())) {
      date.setUTCHours(date.getUTCHours() + 1, 0);
      continue;
    }
    if (!fields.minutes.has(date.getUTCMinutes())) {
      date.setUTCMinutes(date.getUTCMinutes() + 1);
      continue;
    }
    return date.getTime();
  }
  throw new Error("cron schedule never comes due");
}
