// Small caches the live adapters keep in Convex. WorkOS users are looked up by email
// once per TTL, so a burst of checkouts from one customer does not repeat the lookup.
import { v } from "convex/values";
import { internalMutation, internalQuery } from "./_generated/server";

export const getWorkosUser = internalQuery({
  args: { email: v.string(), maxAgeMs: v.number(), now: v.number() },
  returns: v.union(v.null(), v.string()),
  handler: async (ctx, { email, maxAgeMs, now }) => {
    const row = await ctx.db
      .query("workosUserCache")
      .withIndex("by_email", (q) => q.eq("email", email))
      .unique();
    return row && now - row.cachedAt < maxAgeMs ? row.userId : null;
  },
});

export const putWorkosUser = internalMutation({
  args: { email: v.string(), userId: v.union(v.string(), v.null()) },
  returns: v.null(),
  handler: async (ctx, { email, userId }) => {
    const row = await ctx.db
      .query("workosUserCache")
      .withIndex("by_email", (q) => q.eq("email", email))
      .unique();
    if (userId === null) {
      if (row) await ctx.db.delete("workosUserCache", row._id);
    } else if (row) {
      await ctx.db.patch("workosUserCache", row._id, { userId, cachedAt: Date.now() });
    } else {
      await ctx.db.insert("workosUserCache", { email, userId, cachedAt: Date.now() });
    }
    return null;
  },
});
