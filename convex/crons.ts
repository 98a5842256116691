// Brain's scheduled work. Each entry says what it may change; the orphan scan only
// reports (it stores its result for the dashboard and never deletes anything).
import { cronJobs } from "convex/server";
import { internal } from "./_generated/api";
import { SCAN_CRON_ACTOR } from "./orphans";

const crons = cronJobs();

crons.hourly("scan for orphaned provider resources", { minuteUTC: 17 }, internal.orphans.scanOrphans, {
  actor: SCAN_CRON_ACTOR,
});

export default crons;
