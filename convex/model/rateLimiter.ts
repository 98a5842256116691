// The one RateLimiter (component `rateLimiter`): failed admin authentications, and each
// live provider's request budget (configured per call from the environment).
import { RateLimiter, SECOND, MINUTE } from "@convex-dev/rate-limiter";
import { components } from "../_generated/api";

export const rateLimiter = new RateLimiter(components.rateLimiter, {
  adminAuthFailures: { kind: "fixed window", rate: 30, period: MINUTE },
});

export { SECOND, MINUTE };
