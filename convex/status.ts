// The one public function: a checkout session's status view, for a Convex client (the SaaS's own
// checkout success page) to subscribe to. It answers only for the session id it is given (an
// unguessable Stripe id), returns exactly what GET /status answers in JSON, and reads no clock.
import { v } from "convex/values";
import { query } from "./_generated/server";
import { fail } from "./lib/errors";
import { buildStatusView, isCheckoutSessionId, vStatusView } from "./model/status";

/**
 * `status:get({ sessionId })` → the view, or null for an unknown session. A malformed id
 * (not 1–255 letters, digits, `_` or `-`) is a `BAD_REQUEST` ConvexError.
 *
 * ```ts
 * const view = useQuery(api.status.get, { sessionId }); // re-renders as provisioning moves
 * ```
 */
export const get = query({
  args: { sessionId: v.string() },
  returns: v.union(v.null(), vStatusView),
  handler: async (ctx, { sessionId }) => {
    if (!isCheckoutSessionId(sessionId)) fail("BAD_REQUEST", "sessionId must be a checkout session id");
    return buildStatusView(ctx, sessionId);
  },
});
