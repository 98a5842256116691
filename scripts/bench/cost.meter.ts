// The cost benchmark's meter: what convex-test ran, counted per function and per table.
// scripts/bench/vitest.cost.config.mts adds hooks to convex-test that call the meter installed
// at globalThis.__convexTestBench. Counted, while the meter is on:
// - function calls: each top-level query or mutation (components' included), each action run
//   (also one an action runs with ctx.runAction) and each HTTP action; not the queries and
//   mutations a mutation runs inside its own transaction (a component's enqueue, say: counted
//   apart as nested calls), nor convex-test's own bookkeeping transactions (udfPath "custom":
//   the scheduler's state changes, t.run).
// - documents read and written, the same events convex-test's TransactionMetricsTracker
//   counts, charged to the top-level function that ran them and to "component:table".
//   Writes of a transaction that rolled back are dropped, as the tracker drops them.
// Excluded: the functions and tables given at construction (the simulated providers' own
// bookkeeping), with every read and write made inside an excluded function.

type ExecutionContext = { componentPath: string; udfPath: string; udfType?: string } | undefined;
type Frame = { key: string; component: string; writes: string[] };
type Transaction = { key: string; excluded: boolean; reads: string[]; frames: Frame[] };

export type Tally = Map<string, number>;
const bump = (tally: Tally, key: string, by = 1) => tally.set(key, (tally.get(key) ?? 0) + by);

/** "convexPool/…" for a component's function, the bare path for the app's own. */
export const functionKey = (componentPath: string, udfPath: string) => (componentPath ? `${componentPath}/${udfPath}` : udfPath);
/** convex-test's ids end in their table's name ("10042provisioningJobs"). */
const tableOf = (id: unknown) => String(id).replace(/^\d+/, "");

export class CostMeter {
  on = false;
  readonly calls: Tally = new Map();
  readonly nestedCalls: Tally = new Map();
  readonly readsByFunction: Tally = new Map();
  readonly writesByFunction: Tally = new Map();
  readonly readsByTable: Tally = new Map();
  readonly writesByTable: Tally = new Map();
  /** Excluded calls and the reads/writes left out with them, to say how much was left out. */
  readonly excluded = { calls: 0, reads: 0, writes: 0 };
  private tx: Transaction | null = null;

  constructor(
    private readonly excludedFunctions: ReadonlySet<string>,
    /** "component:table" keys; the app's own tables are "app:table". */
    private readonly excludedTables: ReadonlySet<string>,
  ) {}

  install() {
    (globalThis as { __convexTestBench?: unknown }).__convexTestBench = this;
    return this;
  }

  uninstall() {
    delete (globalThis as { __convexTestBench?: unknown }).__convexTestBench;
  }

  // --- hooks called from convex-test ---

  begin(ctx: { componentPath: string; udfPath: string; udfType: string }, isNested: boolean) {
    const key = functionKey(ctx.componentPath, ctx.udfPath);
    if (!isNested) {
      const bookkeeping = ctx.udfPath === "custom";
      this.tx = { key, excluded: !this.on || bookkeeping || this.excludedFunctions.has(key), reads: [], frames: [] };
      if (this.on && !bookkeeping) {
        if (this.tx.excluded) this.excluded.calls++;
        else bump(this.calls, `${ctx.udfType} ${key}`);
      }
    } else if (this.tx && !this.tx.excluded) {
      bump(this.nestedCalls, `${ctx.udfType} ${key}`);
    }
    this.tx?.frames.push({ key, component: ctx.componentPath, writes: [] });
  }

  end(isNested: boolean, committed: boolean) {
    const tx = this.tx;
    if (!tx) return;
    const frame = tx.frames.pop();
    if (frame && committed) {
      const parent = tx.frames[tx.frames.length - 1];
      if (parent) parent.writes.push(...frame.writes);
      else this.flush(tx, frame.writes);
    } else if (frame && !isNested) {
      this.flush(tx, []);
    }
    if (!isNested) this.tx = null;
  }

  action(functionPath: { componentPath: string; udfPath: string }, parent: ExecutionContext) {
    if (!this.on) return;
    const key = functionKey(functionPath.componentPath, functionPath.udfPath);
    if (this.excludedFunctions.has(key)) this.excluded.calls++;
    // An action is its own function execution even when another action runs it (workpool's
    // batch worker runs each enqueued action that way): always a call.
    else bump(this.calls, parent?.udfType === "action" ? `action ${key} (run by an action)` : `action ${key}`);
  }

  http(ctx: { udfPath: string }) {
    if (this.on) bump(this.calls, `http ${ctx.udfPath}`);
  }

  read(id: unknown) {
    const tx = this.tx;
    const frame = tx?.frames[tx.frames.length - 1];
    if (tx && frame) tx.reads.push(`${frame.component || "app"}:${tableOf(id)}`);
  }

  write(id: unknown) {
    const tx = this.tx;
    const frame = tx?.frames[tx.frames.length - 1];
    if (tx && frame) frame.writes.push(`${frame.component || "app"}:${tableOf(id)}`);
  }

  // ---

  private flush(tx: Transaction, writes: string[]) {
    if (!this.on) return;
    for (const [list, byFunction, byTable, kind] of [
      [tx.reads, this.readsByFunction, this.readsByTable, "reads"],
      [writes, this.writesByFunction, this.writesByTable, "writes"],
    ] as const) {
      for (const table of list) {
        if (tx.excluded || this.excludedTables.has(table)) {
          if (tx.key !== "custom") this.excluded[kind]++;
          continue;
        }
        bump(byFunction, tx.key);
        bump(byTable, table);
      }
    }
  }

  totals() {
    const sum = (t: Tally) => [...t.values()].reduce((a, b) => a + b, 0);
    return { functionCalls: sum(this.calls), reads: sum(this.readsByTable), writes: sum(this.writesByTable), nestedCalls: sum(this.nestedCalls) };
  }
}
