// The one RateLimiter (component `rateLimiter`). Every limit is configured per call from the
// environment: the public routes' limits and suspicious-activity buckets (model/security.ts) and
// each live provider's request budget (providers/http.ts).
import { RateLimiter, SECOND, MINUTE } from "@convex-dev/rate-limiter";
import { components } from "../_generated/api";

export const rateLimiter = new RateLimiter(components.rateLimiter);

export { SECOND, MINUTE };
