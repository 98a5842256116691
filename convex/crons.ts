// Brain's scheduled work. Each entry says what it may change; the orphan scan only
// reports (it stores its result for the dashboard and never deletes anything).
import { cronJobs } from "convex/server";
import { internal } from "./_generated/api";
import { SCAN_CRON_ACTOR } from "./orphans";

const crons = cronJobs();

// Re-dispatches any step past its deadline (a dead action), and admits queued jobs if a slot
// is free. Bounds the time from an action dying to its re-dispatch by deadline + 1 minute.
crons.interval("watchdog: re-dispatch steps past their deadline", { minutes: 1 }, internal.provisioning.runWatchdog, {});

// Processes again any Stripe event recorded but left unprocessed (a paid customer is never lost).
crons.interval("reprocess stale Stripe events", { minutes: 10 }, internal.stripe.reprocessStaleEvents, {});

// Retries deletions of compensation that failed (each waits out its own backoff).
crons.interval("retry failed cleanup deletions", { minutes: 5 }, internal.cleanup.retryPendingCleanups, {});

// Backstop of each instance's own deprovision timer: instances whose grace ran out are reviewed.
crons.interval("deprovision instances whose grace ran out", { minutes: 15 }, internal.lifecycle.reviewDueDeprovisions, {});

crons.hourly("scan for orphaned provider resources", { minuteUTC: 17 }, internal.orphans.scanOrphans, {
  actor: SCAN_CRON_ACTOR,
});

// Forwards to tenants: kicks each tenant whose oldest pending delivery is due and not in flight
// (a lost pump, or one that died holding its lease once the lease lapsed).
crons.interval("retry due tenant deliveries", { minutes: 1 }, internal.forwarding.retryDueDeliveries, {});

// Compares Stripe's subscriptions and recent paid checkouts with the instances and applies the
// differences (a missed webhook); a run that would suspend or deprovision too many applies nothing.
crons.daily("reconcile Stripe with the instances", { hourUTC: 4, minuteUTC: 23 }, internal.reconciliation.runReconciliation, {
  dryRun: false,
  actor: "system:reconcile-cron",
});

// Fleet health: enrolls newly live instances and claims every health batch whose round or
// confirmation re-check falls before the next call; each batch runs at its own due time.
crons.interval("health checks", { minutes: 1 }, internal.monitoring.runHealthChecks, {});

// Backstop of each incident's own alert timer: due alerts and reminders, and alert deliveries
// whose retry is due and not in flight.
crons.interval("send due alerts", { minutes: 1 }, internal.alerts.runDueAlerts, {});

// Backstop of each customer email's own send on the Resend pool: pending emails whose try is due.
crons.interval("send due customer emails", { minutes: 1 }, internal.notifications.runDueNotifications, {});

// Retention, the one place every growing table is pruned to its window (docs/security.md#retention):
// callback receipts, health history, alert history, processed Stripe events, finished cleanup tasks,
// orphan scans, deliveries and customer emails, the WorkOS cache, and audit rows past
// AUDIT_RETENTION_MS. One bounded page per mutation, each pass continuing until it is done.
crons.hourly("retention", { minuteUTC: 41 }, internal.retention.runRetention, {});

// Provisioning KPIs: rolls up every hour that ended (and a UTC day once its 24 hours are in)
// into provisioningMetrics, a bounded page per mutation; a second call for the same hour starts nothing.
crons.hourly("roll up provisioning metrics", { minuteUTC: 5 }, internal.metrics.runRollup, {});

// Deploy-key rotation: plans newly active instances and starts the rotation of each whose key is
// DEPLOY_KEY_ROTATION_DAYS old (or whose failed rotation's retry is due), a bounded batch per run.
crons.hourly("rotate tenant deploy keys", { minuteUTC: 29 }, internal.deployKeys.runDeployKeyRotations, {});

export default crons;
