// Hooks added to convex-test's own code (inlined by vitest, so a transform applies) that report
// each transaction's function and each document read or written, with its table, to
// globalThis.__convexTestBench (scripts/bench/cost.meter.ts). With nothing installed there
// they do nothing, so the main test config carries them too (the health scale test meters).
import type { Plugin } from "vitest/config";

const HOOK = "globalThis.__convexTestBench";

/** [what to find, what to put instead, how many times it must be found] in convex-test 0.0.60's dist/index.js. */
const PATCHES: [RegExp, string, number][] = [
  // A query or mutation starts (after it took the transaction lock, for a top-level one).
  [/await transactionManager\.begin\(isNested, transactionLimits\);/g, `$& ${HOOK}?.begin(childCtx, isNested);`, 2],
  // It ends: a commit keeps its writes, a rollback (every query, a failed mutation) drops them.
  [/this\._metricsTracker\?\.commit\(\);/g, `$& ${HOOK}?.end(isNested, true);`, 1],
  [/this\._metricsTracker\?\.rollback\(\);/g, `$& ${HOOK}?.end(isNested, false);`, 1],
  // An action runs (a scheduled one, or one called from an action).
  [
    /const runActionWithHandler = async \(handler, args, functionPath, ctxRunQuery, ctxRunMutation, ctxRunAction\) => \{/g,
    `$& ${HOOK}?.action(functionPath, executionContextStorage.getStore());`,
    1,
  ],
  // An HTTP action runs (t.fetch).
  [/const response = await executionContextStorage\.run\(httpCtx,/g, `${HOOK}?.http(httpCtx); $&`, 1],
  // Documents read: by get, by query stream, by page.
  [/tracker\??\.trackRead\(getDocumentSize\((doc|value)\)\);/g, `$& ${HOOK}?.read($1._id);`, 3],
  // Documents written: insert, patch, replace, delete.
  [/tracker\?\.trackWrite\(getConvexSize\(db\.get\((?:args\.)?table, (_id|id)\)\)\);/g, `$& ${HOOK}?.write($1);`, 3],
  [/tracker\?\.trackWrite\(0\);/g, `$& ${HOOK}?.write(id);`, 1],
];

export function instrumentConvexTest(): Plugin {
  return {
    name: "bench-cost-instrument-convex-test",
    enforce: "pre",
    transform(code, id) {
      if (!/convex-test[\\/]dist[\\/]index\.js/.test(id)) return null;
      let out = code;
      for (const [pattern, replacement, expected] of PATCHES) {
        const found = out.match(pattern)?.length ?? 0;
        // A different convex-test would silently measure nothing: refuse instead.
        if (found !== expected) throw new Error(`bench:cost: convex-test hook ${pattern} found ${found} times, expected ${expected}`);
        out = out.replace(pattern, replacement);
      }
      return { code: out, map: null };
    },
  };
}

