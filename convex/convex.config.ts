// Components Brain runs on: one work pool per provider (its parallelism is that
// provider's concurrency budget) and the shared rate limiter.
import { defineApp } from "convex/server";
import workpool from "@convex-dev/workpool/convex.config";
import rateLimiter from "@convex-dev/rate-limiter/convex.config";

const app = defineApp();
app.use(workpool, { name: "convexPool" });
app.use(workpool, { name: "workosPool" });
app.use(workpool, { name: "cloudflarePool" });
app.use(workpool, { name: "stripePool" });
app.use(workpool, { name: "githubPool" });
app.use(workpool, { name: "resendPool" });
app.use(workpool, { name: "brainPool" });
app.use(rateLimiter);
export default app;
