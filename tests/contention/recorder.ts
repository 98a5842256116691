// Records what every top-level transaction of a convex-test backend reads and writes, so
// a test can check the read and write sets Convex's optimistic concurrency would compare.
// convex-test runs one transaction at a time and never conflicts; this makes the sets
// visible. It knows nothing about Brain: it sees functions, tables, documents and ranges.
//
// How it hooks in (convex-test 0.0.60, inlined by vitest, so these objects are live):
// - The backend's private state (the `convexGlobal` of one `convexTest()` call) is caught
//   once, from the AsyncLocalStorage run that wraps every `t.*` call.
// - Its TransactionManager's begin/commit/rollback mark top-level transactions (they are
//   serialized by convex-test's lock, so at most one is open) and nested ones (whose
//   writes are dropped if they roll back).
// - Each component's DatabaseFake: `get` is a read by id, `startQuery`/`queryNext` an
//   index range (or full scan) with the documents it returned, `insert`/`patch`/`replace`/
//   `delete` a write with the document before and after. Gets made by convex-test while
//   it evaluates a query are not reads (the range is).
// - Each component's module loader: every query and mutation handler is wrapped, so the
//   recorder knows which function (udfPath, args, component) each read or write came from.
// Nothing here changes what a function sees or does.
import { AsyncLocalStorage } from "node:async_hooks";
import { compareValues, jsonToConvex, type Value } from "convex/values";

/** The app's own tables live in the root component, whose path is "". */
export const APP_COMPONENT = "";

type Doc = Record<string, Value | undefined> & { _id: string; _creationTime: number };

/** One condition of an index range, as convex-test receives it in the query JSON. */
export type RangeExpression = { type: "Eq" | "Gt" | "Gte" | "Lt" | "Lte"; fieldPath: string; value: unknown };

export type FunctionFrame = {
  udfPath: string;
  component: string;
  udfType: "query" | "mutation";
  args: unknown;
};

export type DocumentRead = { component: string; table: string; id: string; by: FunctionFrame | null };

export type RangeRead = {
  component: string;
  table: string;
  /** Index name without the table (`by_status`), or null for a full table scan. */
  index: string | null;
  /** The index's key fields, ending with `_creationTime` and `_id` as Convex orders them. */
  keyFields: string[];
  range: RangeExpression[];
  order: "asc" | "desc";
  /** The query also had `.filter` operators (so more than the returned rows were scanned). */
  filtered: boolean;
  limit: number | null;
  paginated: boolean;
  /** Ids of the documents the query returned, in order. */
  returned: string[];
  /**
   * Where reading stopped: the key of the last document read when the query stopped early
   * (`.first()`, `.take(n)` that filled up, `.unique()` with two rows), or null when the whole
   * range was read. Convex's read set is the interval actually read, so a write past this
   * key does not conflict.
   */
  stoppedAtKey: Value[] | null;
  by: FunctionFrame | null;
};

export type WriteRecord = {
  component: string;
  table: string;
  id: string;
  /** Document before this transaction (null for an insert) and after it (null for a delete). */
  before: Doc | null;
  after: Doc | null;
  ops: ("insert" | "patch" | "replace" | "delete")[];
  by: FunctionFrame | null;
};

export type TransactionRecord = {
  seq: number;
  /** Simulated time (Date.now(), fake timers) when the transaction began. */
  startedAt: number;
  /** The outermost function run in the transaction (null for `t.run` and convex-test's own bookkeeping). */
  root: FunctionFrame | null;
  /** Every query and mutation that ran inside it, outermost first (nested calls and component calls too). */
  frames: FunctionFrame[];
  /** False when it rolled back: always for a query, and for a mutation that threw. */
  committed: boolean;
  reads: DocumentRead[];
  ranges: RangeRead[];
  /** Writes that committed, one per document (first before, last after). */
  writes: WriteRecord[];
};

type OpenTransaction = TransactionRecord & {
  /** Write log in order, truncated when a nested transaction rolls back. */
  log: WriteRecord[];
  nestedMarks: number[];
  inserted: Set<string>;
};

type DatabaseFake = {
  get(table: string | undefined, id: string): Doc | null;
  startQuery(query: QueryJson): number;
  queryNext(queryId: number): { value: Doc | null; done: boolean };
  paginate(args: { query: QueryJson }): unknown;
  insert(table: string, value: Record<string, unknown>): string;
  patch(table: string | undefined, id: string, value: Record<string, unknown>): void;
  replace(table: string | undefined, id: string, value: Record<string, unknown>): void;
  delete(table: string | undefined, id: string): void;
  _schema: { tables: Map<string, { indexes: { indexDescriptor: string; fields: string[] }[] }> } | null;
};

type QueryJson = {
  source:
    | { type: "FullTableScan"; tableName: string; order?: "asc" | "desc" | null }
    | { type: "IndexRange"; indexName: string; range: RangeExpression[]; order?: "asc" | "desc" | null }
    | { type: "Search"; indexName: string };
  operators: ({ filter: unknown } | { limit: number })[];
};

type TransactionManager = {
  begin(isNested: boolean, limits?: unknown): Promise<void>;
  commit(isNested: boolean): unknown;
  rollback(isNested: boolean): void;
};

type ConvexGlobal = {
  components: Record<string, { db: DatabaseFake; modules: (path: string) => Promise<Record<string, unknown>> }>;
  transactionManager: TransactionManager;
};

type RegisteredFunction = { isQuery?: boolean; isMutation?: boolean; _handler?: (ctx: unknown, args: unknown) => unknown };

export function tableOfId(id: string): string {
  return id.replace(/^[0-9]+/, "");
}

/** A field of a document by dotted path (`resources.pagesProjectName`), as Convex indexes it. */
export function fieldValue(doc: Record<string, unknown>, path: string): Value | undefined {
  let value: unknown = doc;
  for (const part of path.split(".")) {
    value = value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>)[part] : undefined;
  }
  return value as Value | undefined;
}

function rangeValue(json: unknown): Value | undefined {
  if (json !== null && typeof json === "object" && "$undefined" in json) return undefined;
  return jsonToConvex(json as never);
}

/** Whether a document's index key satisfies every condition of a range. */
export function inRange(doc: Record<string, unknown>, range: RangeExpression[]): boolean {
  return range.every((expr) => {
    const cmp = compareValues(fieldValue(doc, expr.fieldPath) as Value, rangeValue(expr.value) as Value);
    switch (expr.type) {
      case "Eq":
        return cmp === 0;
      case "Gt":
        return cmp > 0;
      case "Gte":
        return cmp >= 0;
      case "Lt":
        return cmp < 0;
      case "Lte":
        return cmp <= 0;
    }
  });
}

export function indexKey(doc: Record<string, unknown>, keyFields: string[]): Value[] {
  return keyFields.map((field) => fieldValue(doc, field) as Value);
}

export function compareKeys(a: Value[], b: Value[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const cmp = compareValues(a[i], b[i]);
    if (cmp !== 0) return cmp;
  }
  return 0;
}

/** Whether a document (its key) lies in the part of the range the query actually read. */
export function inReadInterval(doc: Record<string, unknown>, read: RangeRead): boolean {
  if (read.index === null) return true; // a full table scan: any document of the table
  if (!inRange(doc, read.range)) return false;
  if (read.stoppedAtKey === null) return true;
  const cmp = compareKeys(indexKey(doc, read.keyFields), read.stoppedAtKey);
  return read.order === "asc" ? cmp <= 0 : cmp >= 0;
}

/** Catches the backend's private state from the AsyncLocalStorage run that wraps every `t.*` call. */
async function captureConvexGlobal(t: { run: (fn: (ctx: unknown) => Promise<unknown>) => Promise<unknown> }): Promise<ConvexGlobal> {
  const proto = AsyncLocalStorage.prototype as unknown as { run: (...args: unknown[]) => unknown };
  const original = proto.run;
  let found: ConvexGlobal | undefined;
  proto.run = function (this: unknown, store: unknown, ...rest: unknown[]) {
    if (!found && store && typeof store === "object" && "components" in store && "transactionManager" in store) {
      found = store as ConvexGlobal;
    }
    return original.call(this, store, ...rest);
  };
  try {
    await t.run(async () => null);
  } finally {
    proto.run = original;
  }
  if (!found) throw new Error("contention recorder: could not find convex-test's backend state (convex-test version changed?)");
  return found;
}

export type Recorder = {
  /** Every finished top-level transaction, in the order convex-test ran them. */
  readonly transactions: TransactionRecord[];
  /** Stops recording new transactions (hooks stay in place but do nothing). */
  stop(): void;
  start(): void;
  clear(): void;
};

const installed = new WeakMap<object, Recorder>();

/**
 * Installs the recorder on a backend made by `convexTest()` (for Brain, `setupBackend()`).
 * Call it before the traffic you want to record; installing twice returns the same recorder.
 */
export async function installRecorder(t: { run: (fn: (ctx: unknown) => Promise<unknown>) => Promise<unknown> }): Promise<Recorder> {
  const global = await captureConvexGlobal(t);
  const existing = installed.get(global);
  if (existing) return existing;

  const transactions: TransactionRecord[] = [];
  const frameStorage = new AsyncLocalStorage<FunctionFrame>();
  let active = true;
  let seq = 0;
  let open: OpenTransaction | null = null;
  let evaluatingQuery = 0;

  const tm = global.transactionManager;
  const begin = tm.begin.bind(tm);
  const commit = tm.commit.bind(tm);
  const rollback = tm.rollback.bind(tm);
  tm.begin = async (isNested, limits) => {
    await begin(isNested, limits);
    if (!isNested) {
      open = active
        ? { seq: seq++, startedAt: Date.now(), root: null, frames: [], committed: false, reads: [], ranges: [], writes: [], log: [], nestedMarks: [], inserted: new Set() }
        : null;
    } else {
      open?.nestedMarks.push(open.log.length);
    }
  };
  const finish = (committed: boolean) => {
    const tx = open;
    open = null;
    if (!tx) return;
    const byId = new Map<string, WriteRecord>();
    if (committed) {
      for (const w of tx.log) {
        const prior = byId.get(w.id);
        if (prior) {
          prior.after = w.after;
          prior.ops.push(...w.ops);
        } else byId.set(w.id, { ...w, ops: [...w.ops] });
      }
    }
    const { log: _log, nestedMarks: _marks, inserted: _inserted, ...record } = tx;
    transactions.push({
      ...record,
      committed,
      writes: [...byId.values()].filter((w) => w.before !== null || w.after !== null),
    });
  };
  tm.commit = (isNested) => {
    const result = commit(isNested);
    if (isNested) open?.nestedMarks.pop();
    else finish(true);
    return result;
  };
  tm.rollback = (isNested) => {
    rollback(isNested);
    if (isNested) {
      const mark = open?.nestedMarks.pop();
      if (open && mark !== undefined) open.log.length = mark;
    } else finish(false);
  };

  for (const [component, info] of Object.entries(global.components)) {
    hookDatabase(component, info.db);
    const load = info.modules;
    const wrapped = new Map<string, Promise<Record<string, unknown>>>();
    info.modules = (path) => {
      let module = wrapped.get(path);
      if (!module) {
        module = load(path).then((m) => wrapModule(component, path, m));
        wrapped.set(path, module);
      }
      return module;
    };
  }

  function wrapModule(component: string, path: string, module: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = { ...module };
    for (const [name, value] of Object.entries(module)) {
      const fn = value as RegisteredFunction | null;
      if (!fn || (typeof fn !== "object" && typeof fn !== "function")) continue;
      if (!(fn.isQuery || fn.isMutation) || typeof fn._handler !== "function") continue;
      const handler = fn._handler;
      const udfPath = `${path}:${name}`;
      const udfType = fn.isQuery ? "query" : "mutation";
      const copy = Object.create(fn as object) as RegisteredFunction;
      copy._handler = (ctx: unknown, args: unknown) => {
        const frame: FunctionFrame = { udfPath, component, udfType, args };
        if (open) {
          if (open.frames.length === 0) open.root = frame;
          open.frames.push(frame);
        }
        return frameStorage.run(frame, () => handler(ctx, args));
      };
      out[name] = copy;
    }
    return out;
  }

  function hookDatabase(component: string, db: DatabaseFake) {
    const get = db.get.bind(db);
    const startQuery = db.startQuery.bind(db);
    const queryNext = db.queryNext.bind(db);
    const paginate = db.paginate.bind(db);
    const insert = db.insert.bind(db);
    const patch = db.patch.bind(db);
    const replace = db.replace.bind(db);
    const remove = db.delete.bind(db);
    const queries = new Map<number, RangeRead>();
    const by = () => frameStorage.getStore() ?? null;

    const keyFieldsOf = (table: string, index: string): string[] => {
      if (index === "by_creation_time") return ["_creationTime", "_id"];
      if (index === "by_id") return ["_id"];
      const found = db._schema?.tables.get(table)?.indexes.find((i) => i.indexDescriptor === index);
      return [...(found?.fields ?? []), "_creationTime", "_id"];
    };
    const rangeRead = (query: QueryJson, paginated: boolean): RangeRead | null => {
      const source = query.source;
      if (source.type === "Search") return null;
      const [table, index] =
        source.type === "FullTableScan" ? [source.tableName, null] : (source.indexName.split(".") as [string, string]);
      const limitOp = query.operators.find((op): op is { limit: number } => "limit" in op);
      return {
        component,
        table,
        index,
        keyFields: index === null ? ["_creationTime", "_id"] : keyFieldsOf(table, index),
        range: source.type === "IndexRange" ? source.range : [],
        order: source.order ?? "asc",
        filtered: query.operators.some((op) => "filter" in op),
        limit: limitOp?.limit ?? null,
        paginated,
        returned: [],
        stoppedAtKey: null,
        by: by(),
      };
    };

    db.get = (table, id) => {
      const doc = get(table, id);
      if (open && evaluatingQuery === 0 && !open.inserted.has(id)) {
        open.reads.push({ component, table: table ?? tableOfId(id), id, by: by() });
      }
      return doc;
    };
    db.startQuery = (query) => {
      evaluatingQuery++;
      let queryId: number;
      try {
        queryId = startQuery(query);
      } finally {
        evaluatingQuery--;
      }
      const read = open ? rangeRead(query, false) : null;
      if (open && read) {
        open.ranges.push(read);
        queries.set(queryId, read);
      }
      return queryId;
    };
    db.queryNext = (queryId) => {
      const result = queryNext(queryId);
      const read = queries.get(queryId);
      if (read) {
        if (result.value) {
          read.returned.push(result.value._id);
          // Until the stream is exhausted, reading stopped at the last document returned.
          read.stoppedAtKey = indexKey(result.value, read.keyFields);
        }
        if (result.done) {
          queries.delete(queryId);
          // `.take(n)`, `.first()` and `.unique()` are a limit plus collect: a full page means
          // reading stopped there; fewer rows (or no limit) means the range ran out. With a
          // `.filter`, rows past the last one returned were scanned too: count the whole range.
          const full = read.limit !== null && read.returned.length >= read.limit;
          if (!full || read.filtered) read.stoppedAtKey = null;
        }
      }
      return result;
    };
    db.paginate = (args) => {
      evaluatingQuery++;
      try {
        // Conservative: the whole range, not just the page's interval.
        const read = open ? rangeRead(args.query, true) : null;
        if (open && read) open.ranges.push(read);
        return paginate(args);
      } finally {
        evaluatingQuery--;
      }
    };
    const logWrite = (op: WriteRecord["ops"][number], table: string, id: string, before: Doc | null) => {
      if (!open) return;
      open.log.push({ component, table, id, before, after: get(table, id), ops: [op], by: by() });
    };
    db.insert = (table, value) => {
      const id = insert(table, value);
      if (open) {
        open.inserted.add(id);
        logWrite("insert", table, id, null);
      }
      return id;
    };
    db.patch = (table, id, value) => {
      const before = open ? get(table, id) : null;
      patch(table, id, value);
      logWrite("patch", table ?? tableOfId(id), id, before);
    };
    db.replace = (table, id, value) => {
      const before = open ? get(table, id) : null;
      replace(table, id, value);
      logWrite("replace", table ?? tableOfId(id), id, before);
    };
    db.delete = (table, id) => {
      const before = open ? get(table, id) : null;
      remove(table, id);
      logWrite("delete", table ?? tableOfId(id), id, before);
    };
  }

  const recorder: Recorder = {
    transactions,
    stop: () => {
      active = false;
    },
    start: () => {
      active = true;
    },
    clear: () => {
      transactions.length = 0;
    },
  };
  installed.set(global, recorder);
  return recorder;
}
