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

/**
 * Not hooks: convex-test finds a query's documents by walking the ids of every table in the
 * database and testing each against the index range, so each indexed lookup costs the whole
 * database. These keep each table's ids, and for an index range that starts with an equality on
 * its first field, the ids with that value, up to date as commits apply. A query then walks only
 * those candidates (plus the open transaction's writes) and still tests, filters and sorts each
 * exactly as before, so results are unchanged; a 10,000-instance fleet stays affordable.
 */
const DATABASE_HELPERS = `
    __track(id, next) {
        const table = tableNameFromId(id);
        const previous = this._documents[id] ?? null;
        const ids = (this.__idsByTable ??= new Map());
        if (!ids.has(table)) ids.set(table, new Set());
        if (next === null) ids.get(table).delete(id); else ids.get(table).add(id);
        const indexes = this.__valueIndexes?.get(table);
        if (indexes === undefined) return;
        for (const [prefix, buckets] of indexes) {
            if (previous !== null) buckets.get(__bucketKeyOf(previous, prefix))?.delete(id);
            if (next !== null) {
                const key = __bucketKeyOf(next, prefix);
                if (!buckets.has(key)) buckets.set(key, new Set());
                buckets.get(key).add(id);
            }
        }
    }
    __valueIndex(table, prefix) {
        const indexes = (this.__valueIndexes ??= new Map());
        if (!indexes.has(table)) indexes.set(table, new Map());
        let buckets = indexes.get(table).get(prefix);
        if (buckets === undefined) {
            buckets = new Map();
            for (const id of this.__idsByTable?.get(table) ?? []) {
                const key = __bucketKeyOf(this._documents[id], prefix);
                if (!buckets.has(key)) buckets.set(key, new Set());
                buckets.get(key).add(id);
            }
            indexes.get(table).set(prefix, buckets);
        }
        return buckets;
    }
    __iterateRange(tableName, fields, range, callback) {
        // The index's leading fields that the range pins with Eq, and their values.
        const keys = [];
        for (const field of fields) {
            const eq = range.find((r) => r.type === "Eq" && r.fieldPath === field);
            const key = eq === undefined || field === "_id" || field === "_creationTime" ? undefined : __bucketKey(evaluateQueryValue(eq.value));
            if (key === undefined) break;
            keys.push([field, key]);
        }
        if (keys.length === 0) return this._iterateDocs(tableName, callback);
        const prefix = keys.map(([field]) => field).join("\\u0000");
        const key = keys.map(([, key]) => key).join("\\u0000");
        const buckets = this.__valueIndex(tableName, prefix);
        const ids = new Set([...(buckets.get(key) ?? []), ...(buckets.get("*") ?? [])]);
        for (let i = 0; i < this._writes.length; i++) {
            for (const id of Object.keys(this._writes[i])) if (tableNameFromId(id) === tableName) ids.add(id);
        }
        for (const id of ids) {
            const document = this.get(tableName, id);
            if (document !== null) callback(document);
        }
    }
    _iterateDocs(tableName, callback) {`;

const BUCKET_KEY = `
function __bucketKey(value) {
    if (value === undefined) return "u";
    if (value === null) return "n";
    switch (typeof value) {
        case "string": return "s" + value;
        case "number": return Object.is(value, -0) ? "f0" : "f" + value;
        case "bigint": return "b" + value;
        case "boolean": return "t" + value;
        default: return undefined;
    }
}
function __bucketKeyOf(document, prefix) {
    const keys = [];
    for (const field of prefix.split("\\u0000")) {
        const key = __bucketKey(evaluateFieldPath(field, document));
        if (key === undefined) return "*";
        keys.push(key);
    }
    return keys.join("\\u0000");
}
function tableNameFromId(id) {`;

const SPEED_PATCHES: [RegExp, string, number][] = [
  [/    _iterateDocs\(tableName, callback\) \{/g, DATABASE_HELPERS, 1],
  [/\nfunction tableNameFromId\(id\) \{/g, BUCKET_KEY, 1],
  [/const ids = new Set\(Object\.keys\(this\._documents\)\.filter\(isInTable\)\);/g, "const ids = new Set(this.__idsByTable?.get(tableName) ?? []);", 1],
  [/delete this\._documents\[_id\];/g, "this.__track(_id, null); $&", 1],
  [
    /this\._documents\[_id\] =\s*commitTs === null \? write : resolveCommittedValues\(write, commitTs\);/g,
    "{ const next = commitTs === null ? write : resolveCommittedValues(write, commitTs); this.__track(_id, next); this._documents[_id] = next; }",
    1,
  ],
  [
    /this\._iterateDocs\(tableName, \(doc\) => \{\s*if \(source\.range\.every/g,
    "this.__iterateRange(tableName, fields, source.range, (doc) => {\n                    if (source.range.every",
    1,
  ],
];

export function instrumentConvexTest(): Plugin {
  return {
    name: "bench-cost-instrument-convex-test",
    enforce: "pre",
    transform(code, id) {
      if (!/convex-test[\\/]dist[\\/]index\.js/.test(id)) return null;
      let out = code;
      for (const [pattern, replacement, expected] of [...PATCHES, ...(process.env.NO_SPEED ? [] : SPEED_PATCHES)]) {
        const found = out.match(pattern)?.length ?? 0;
        // A different convex-test would silently measure nothing: refuse instead.
        if (found !== expected) throw new Error(`bench:cost: convex-test hook ${pattern} found ${found} times, expected ${expected}`);
        out = out.replace(pattern, replacement);
      }
      return { code: out, map: null };
    },
  };
}

