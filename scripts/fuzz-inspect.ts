// A query the fuzzer (scripts/fuzz.ts) adds to the embedded backend's root and to every
// component, so it can fingerprint every document there, scheduled functions included, before
// and after each input. Never part of a deployment: it lives outside convex/.
import { queryGeneric } from "convex/server";
import { convexToJson, v } from "convex/values";

/** `{ table: { id: fingerprint } }` for the given tables and `_scheduled_functions`. */
export const dump = queryGeneric({
  args: { tables: v.array(v.string()) },
  returns: v.record(v.string(), v.record(v.string(), v.string())),
  handler: async (ctx, { tables }) => {
    const out: Record<string, Record<string, string>> = {};
    const fingerprint = (rows: { _id: string }[]) =>
      Object.fromEntries(rows.map((row) => [row._id, JSON.stringify(convexToJson(row as never))]));
    for (const table of tables) {
      out[table] = fingerprint(await ctx.db.query(table).collect());
    }
    out._scheduled_functions = fingerprint(await ctx.db.system.query("_scheduled_functions").collect());
    return out;
  },
});
