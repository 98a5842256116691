// Components Brain runs on: one work pool per provider (its parallelism is that
// provider's concurrency budget), the health checks' pool, the shared rate limiter, and the
// fleet health counts (an aggregate, so the dashboard never scans instances).
import { defineApp } from "convex/server";
import workpool from "@convex-dev/workpool/convex.config";
import rateLimiter from "@convex-dev/rate-limiter/convex.config";
import aggregate from "@convex-dev/aggregate/convex.config";

const app = defineApp();
app.use(workpool, { name: "convexPool" });
app.use(workpool, { name: "workosPool" });
app.use(workpool, { name: "cloudflarePool" });
app.use(workpool, { name: "stripePool" });
app.use(workpool, { name: "githubPool" });
app.use(workpool, { name: "resendPool" });
app.use(workpool, { name: "brainPool" });
app.use(workpool, { name: "healthPool" });
app.use(rateLimiter);
app.use(aggregate, { name: "healthCounts" });
export default app;
