// The provisioning KPIs' raw figures: what one metrics bucket (or a live stretch of time) holds,
// how two merge, and the KPIs they answer. Pure: no database, so the schema can import the
// validator and the tests can check the arithmetic directly. See docs/metrics.md.
import { v, type Infer } from "convex/values";

/**
 * Durations are kept as a log-scale histogram: bin 0 holds 0 ms, bin k ≥ 1 holds
 * [GROWTH^(k-1), GROWTH^k) ms. A percentile is read as its bin's geometric middle, clamped to
 * the exact min and max, so it is within ±5% of the true sample (nearest rank). count, sum, min
 * and max are exact, so the average is exact. A bucket holds at most ~250 bins per histogram
 * (1 ms to 30 days), whatever the number of jobs.
 */
export const HISTOGRAM_GROWTH = 1.1;

export const vHistogram = v.object({
  count: v.number(),
  sum: v.number(),
  min: v.number(),
  max: v.number(),
  /** [bin, count] pairs, ascending by bin, only bins with samples. */
  bins: v.array(v.array(v.number())),
});
export type Histogram = Infer<typeof vHistogram>;

export const vMetricFigures = v.object({
  /** Provision jobs created. */
  started: v.number(),
  /** Provision jobs that finished succeeded / failed (a job retried by an operator counts once per finish). */
  succeeded: v.number(),
  failed: v.number(),
  /** End to end (creation to ready) of the jobs that succeeded. */
  duration: vHistogram,
  /** Per step: first start to success, of every step that succeeded in a finished job. */
  steps: v.record(v.string(), vHistogram),
  /** Failed attempts (each automatic retry's cause, each final failure, each cancel) by step and class. */
  failuresByStep: v.record(v.string(), v.number()),
  failuresByClass: v.record(v.string(), v.number()),
  /** Automatic retries scheduled (step.retry_scheduled) in the finished jobs' last runs. */
  retries: v.number(),
  /** Finished jobs whose last run had a failed attempt, and of those the ones that succeeded with no manual retry. */
  withFailure: v.number(),
  autoRecovered: v.number(),
  /** Incidents opened (MTTD: openedAt − since), and resolved as recovered (MTTR: resolvedAt − since). */
  detected: v.number(),
  detectMsSum: v.number(),
  recovered: v.number(),
  repairMsSum: v.number(),
  /** Health-check coverage samples (one per hourly rollup run near its hour, one live). */
  coverageSum: v.number(),
  coverageSamples: v.number(),
});
export type MetricFigures = Infer<typeof vMetricFigures>;

export const emptyHistogram = (): Histogram => ({ count: 0, sum: 0, min: 0, max: 0, bins: [] });

export function emptyFigures(): MetricFigures {
  return {
    started: 0,
    succeeded: 0,
    failed: 0,
    duration: emptyHistogram(),
    steps: {},
    failuresByStep: {},
    failuresByClass: {},
    retries: 0,
    withFailure: 0,
    autoRecovered: 0,
    detected: 0,
    detectMsSum: 0,
    recovered: 0,
    repairMsSum: 0,
    coverageSum: 0,
    coverageSamples: 0,
  };
}

export function binOf(ms: number): number {
  if (ms < 1) return 0;
  return 1 + Math.floor(Math.log(ms) / Math.log(HISTOGRAM_GROWTH) + 1e-9);
}

/** A histogram with one more sample (a new object; the input is not changed). */
export function addSample(h: Histogram, rawMs: number): Histogram {
  const ms = Math.max(0, rawMs);
  const bin = binOf(ms);
  const bins = h.bins.map((pair) => [...pair]);
  const at = bins.findIndex(([b]) => b >= bin);
  if (at >= 0 && bins[at][0] === bin) bins[at][1] += 1;
  else if (at >= 0) bins.splice(at, 0, [bin, 1]);
  else bins.push([bin, 1]);
  return {
    count: h.count + 1,
    sum: h.sum + ms,
    min: h.count === 0 ? ms : Math.min(h.min, ms),
    max: h.count === 0 ? ms : Math.max(h.max, ms),
    bins,
  };
}

export function mergeHistograms(a: Histogram, b: Histogram): Histogram {
  if (a.count === 0) return b;
  if (b.count === 0) return a;
  const counts = new Map<number, number>();
  for (const [bin, n] of [...a.bins, ...b.bins]) counts.set(bin, (counts.get(bin) ?? 0) + n);
  return {
    count: a.count + b.count,
    sum: a.sum + b.sum,
    min: Math.min(a.min, b.min),
    max: Math.max(a.max, b.max),
    bins: [...counts.entries()].sort(([x], [y]) => x - y).map(([bin, n]) => [bin, n]),
  };
}

/** The nearest-rank percentile (0 < p ≤ 1), within ±5% (see HISTOGRAM_GROWTH); null without samples. */
export function percentile(h: Histogram, p: number): number | null {
  if (h.count === 0) return null;
  const rank = Math.max(1, Math.ceil(p * h.count));
  // The extreme ranks are kept exactly.
  if (rank === 1) return Math.round(h.min);
  if (rank >= h.count) return Math.round(h.max);
  let seen = 0;
  for (const [bin, n] of h.bins) {
    seen += n;
    if (seen >= rank) {
      const middle = bin === 0 ? 0 : Math.pow(HISTOGRAM_GROWTH, bin - 0.5);
      return Math.round(Math.min(h.max, Math.max(h.min, middle)));
    }
  }
  return Math.round(h.max);
}

const addCounts = (a: Record<string, number>, b: Record<string, number>) => {
  const out = { ...a };
  for (const [key, n] of Object.entries(b)) out[key] = (out[key] ?? 0) + n;
  return out;
};

export function mergeFigures(a: MetricFigures, b: MetricFigures): MetricFigures {
  const steps: Record<string, Histogram> = { ...a.steps };
  for (const [name, h] of Object.entries(b.steps)) steps[name] = mergeHistograms(steps[name] ?? emptyHistogram(), h);
  return {
    started: a.started + b.started,
    succeeded: a.succeeded + b.succeeded,
    failed: a.failed + b.failed,
    duration: mergeHistograms(a.duration, b.duration),
    steps,
    failuresByStep: addCounts(a.failuresByStep, b.failuresByStep),
    failuresByClass: addCounts(a.failuresByClass, b.failuresByClass),
    retries: a.retries + b.retries,
    withFailure: a.withFailure + b.withFailure,
    autoRecovered: a.autoRecovered + b.autoRecovered,
    detected: a.detected + b.detected,
    detectMsSum: a.detectMsSum + b.detectMsSum,
    recovered: a.recovered + b.recovered,
    repairMsSum: a.repairMsSum + b.repairMsSum,
    coverageSum: a.coverageSum + b.coverageSum,
    coverageSamples: a.coverageSamples + b.coverageSamples,
  };
}

const vMs = v.union(v.number(), v.null());
const vRate = v.union(v.number(), v.null());

/** getProvisioningMetrics' answer (GET /admin/metrics serves the same). null: nothing to measure. */
export const vProvisioningMetrics = v.object({
  from: v.number(),
  to: v.number(),
  jobs: v.object({ started: v.number(), succeeded: v.number(), failed: v.number() }),
  successRate: vRate,
  durationMs: v.object({ avg: vMs, p50: vMs, p95: vMs }),
  stepDurationMs: v.record(v.string(), v.object({ avg: vMs, p50: vMs, p95: vMs, count: v.number() })),
  failuresByStep: v.record(v.string(), v.number()),
  failuresByClass: v.record(v.string(), v.number()),
  retriesPerJob: vRate,
  autoRecoveryRate: vRate,
  mttdMs: vMs,
  mttrMs: vMs,
  healthCoverage: vRate,
});
export type ProvisioningMetrics = Infer<typeof vProvisioningMetrics>;

const ratio = (n: number, d: number) => (d === 0 ? null : n / d);
const average = (h: Histogram) => (h.count === 0 ? null : Math.round(h.sum / h.count));

/** The KPIs of [from, to) from its merged figures. */
export function kpis(from: number, to: number, f: MetricFigures): ProvisioningMetrics {
  const finished = f.succeeded + f.failed;
  const stepDurationMs: ProvisioningMetrics["stepDurationMs"] = {};
  for (const [name, h] of Object.entries(f.steps)) {
    if (h.count > 0) stepDurationMs[name] = { avg: average(h), p50: percentile(h, 0.5), p95: percentile(h, 0.95), count: h.count };
  }
  return {
    from,
    to,
    jobs: { started: f.started, succeeded: f.succeeded, failed: f.failed },
    successRate: ratio(f.succeeded, finished),
    durationMs: { avg: average(f.duration), p50: percentile(f.duration, 0.5), p95: percentile(f.duration, 0.95) },
    stepDurationMs,
    failuresByStep: f.failuresByStep,
    failuresByClass: f.failuresByClass,
    retriesPerJob: ratio(f.retries, finished),
    autoRecoveryRate: ratio(f.autoRecovered, f.withFailure),
    mttdMs: f.detected === 0 ? null : Math.round(f.detectMsSum / f.detected),
    mttrMs: f.recovered === 0 ? null : Math.round(f.repairMsSum / f.recovered),
    healthCoverage: ratio(f.coverageSum, f.coverageSamples),
  };
}
