// Finds pairs of recorded transactions where one's writes intersect the other's reads: the
// pairs Convex's optimistic concurrency would make retry (or, for a query, re-run) if they
// ran at the same time. Generic: what counts as a "kind" and whose job a transaction is
// come from the caller.
import {
  APP_COMPONENT,
  inReadInterval,
  type RangeRead,
  type TransactionRecord,
  type WriteRecord,
} from "./recorder";

/**
 * Only transactions that can overlap in time can conflict. A Convex query or mutation may run
 * for at most about one second (its user-code time limit), so one that began more than that
 * before another had committed before the other took its snapshot: its writes are already in
 * the other's snapshot, not a conflict. Pairs whose simulated start times differ by more than
 * this are not compared. Under fake timers convex-test runs a burst at a few simulated instants,
 * so the window is generous: most of a burst's transactions fall inside each other's windows.
 */
export const CONCURRENCY_WINDOW_MS = 1000;

export type Owner = { kind: "job"; id: string } | { kind: "none" } | { kind: "several"; ids: string[] };

export type Intersection = {
  writer: { seq: number; kind: string; startedAt: number; owner: Owner; by: string | null };
  reader: { seq: number; kind: string; startedAt: number; owner: Owner; by: string | null };
  table: string;
  /** `by id` for a document read with `db.get`, else the index range read (`by_status [status = "running"]`). */
  read: string;
  id: string;
  write: "insert" | "update" | "delete";
};

export type CheckOptions = {
  /** The name to group a transaction under (usually its outermost app function). */
  kindOf: (tx: TransactionRecord) => string;
  ownerOf: (tx: TransactionRecord) => Owner;
  /** Which transactions take part (the hot paths). */
  include: (tx: TransactionRecord) => boolean;
  /**
   * The job a written document belongs to, if any. A document of job X written by one
   * transaction of X and read by another of X is X's own document shared within X, which
   * is allowed even when one of them also touches other jobs (an admission inside X's last
   * completion, say).
   */
  documentOwner?: (write: WriteRecord) => string | null;
  /**
   * Whether two transactions can never run at the same time: runs of one self-scheduling
   * singleton (each run schedules the next, so at most one is in flight). Their pairs are
   * ordered, not concurrent, and are skipped.
   */
  serial?: (a: TransactionRecord, b: TransactionRecord) => boolean;
  windowMs?: number;
  /** Component whose tables are checked; others' tables are their own design. Default: the app. */
  component?: string;
};

const sameJob = (a: Owner, b: Owner) => a.kind === "job" && b.kind === "job" && a.id === b.id;
const involves = (o: Owner, job: string) => (o.kind === "job" ? o.id === job : o.kind === "several" ? o.ids.includes(job) : false);

export function describeRange(read: RangeRead): string {
  if (read.index === null) return "full table scan";
  const conditions = read.range.map((r) => {
    const op = { Eq: "=", Gt: ">", Gte: ">=", Lt: "<", Lte: "<=" }[r.type];
    return `${r.fieldPath} ${op} ${JSON.stringify(r.value)}`;
  });
  const tail = [read.stoppedAtKey !== null ? "read up to a row" : null, read.paginated ? "paginated" : null].filter(Boolean);
  return `${read.index} [${conditions.join(", ")}]${tail.length ? ` (${tail.join(", ")})` : ""}`;
}

function writeKind(w: WriteRecord): Intersection["write"] {
  return w.before === null ? "insert" : w.after === null ? "delete" : "update";
}

/** Every (writer, reader) pair of included transactions, on different jobs and inside the window, whose write set meets the read set. */
export function findIntersections(transactions: TransactionRecord[], options: CheckOptions): Intersection[] {
  const windowMs = options.windowMs ?? CONCURRENCY_WINDOW_MS;
  const component = options.component ?? APP_COMPONENT;
  const txs = transactions.filter(options.include).map((tx) => ({ tx, kind: options.kindOf(tx), owner: options.ownerOf(tx) }));

  // Index the readers: by document id, and by table for ranges.
  const byId = new Map<string, { i: number; by: string | null }[]>();
  const byTable = new Map<string, { i: number; read: RangeRead }[]>();
  txs.forEach(({ tx }, i) => {
    const seen = new Set<string>();
    for (const r of tx.reads) {
      if (r.component !== component || seen.has(r.id)) continue;
      seen.add(r.id);
      const list = byId.get(r.id) ?? [];
      list.push({ i, by: r.by?.udfPath ?? null });
      byId.set(r.id, list);
    }
    for (const read of tx.ranges) {
      if (read.component !== component) continue;
      const list = byTable.get(read.table) ?? [];
      list.push({ i, read });
      byTable.set(read.table, list);
    }
  });

  const found: Intersection[] = [];
  txs.forEach((w, wi) => {
    for (const write of w.tx.writes) {
      if (write.component !== component) continue;
      const docOwner = options.documentOwner?.(write) ?? null;
      const hits = new Map<number, { read: string; by: string | null }>();
      for (const r of byId.get(write.id) ?? []) hits.set(r.i, { read: "by id", by: r.by });
      for (const { i, read } of byTable.get(write.table) ?? []) {
        if (hits.has(i)) continue;
        const docs = [write.before, write.after].filter((d) => d !== null);
        if (docs.some((d) => inReadInterval(d, read))) hits.set(i, { read: describeRange(read), by: read.by?.udfPath ?? null });
      }
      for (const [ri, hit] of hits) {
        if (ri === wi) continue;
        const r = txs[ri];
        if (Math.abs(r.tx.startedAt - w.tx.startedAt) > windowMs) continue;
        if (sameJob(w.owner, r.owner)) continue;
        if (options.serial?.(w.tx, r.tx)) continue;
        if (docOwner !== null && involves(w.owner, docOwner) && involves(r.owner, docOwner)) continue;
        found.push({
          writer: { seq: w.tx.seq, kind: w.kind, startedAt: w.tx.startedAt, owner: w.owner, by: write.by?.udfPath ?? null },
          reader: { seq: r.tx.seq, kind: r.kind, startedAt: r.tx.startedAt, owner: r.owner, by: hit.by },
          table: write.table,
          read: hit.read,
          id: write.id,
          write: writeKind(write),
        });
      }
    }
  });
  return found;
}

const ownerText = (o: Owner) => (o.kind === "job" ? `job ${o.id}` : o.kind === "none" ? "no job" : `${o.ids.length} jobs`);

/** Groups intersections by (writer kind, reader kind, table, read) and prints each group with an example. */
export function formatIntersections(found: Intersection[], maxGroups = 40): string {
  const groups = new Map<string, Intersection[]>();
  for (const x of found) {
    const key = signature(x);
    const list = groups.get(key) ?? [];
    list.push(x);
    groups.set(key, list);
  }
  const lines = [`${found.length} write/read intersections in ${groups.size} groups (writer ⟶ reader):`];
  for (const [, list] of [...groups.entries()].slice(0, maxGroups)) {
    const x = list[0];
    lines.push(
      `- ${x.writer.kind} writes ${x.table} (${x.write}) ∩ ${x.reader.kind} reads ${x.table} ${elide(x.read)}: ${list.length}×`,
      `    e.g. writer tx#${x.writer.seq} (${ownerText(x.writer.owner)}, t=${x.writer.startedAt}${x.writer.by && x.writer.by !== x.writer.kind ? `, in ${x.writer.by}` : ""})` +
        ` wrote ${x.id}; reader tx#${x.reader.seq} (${ownerText(x.reader.owner)}, t=${x.reader.startedAt}${x.reader.by && x.reader.by !== x.reader.kind ? `, in ${x.reader.by}` : ""})`,
    );
  }
  if (groups.size > maxGroups) lines.push(`… and ${groups.size - maxGroups} more groups`);
  return lines.join("\n");
}

/** Long string values (ids, session ids) vary between runs; short ones ("running") name the range. */
const elide = (text: string) => text.replace(/"[^"]*"/g, (s) => (s.length > 24 ? '"…"' : s));

/** A stable name for an intersection's group, for baselines: `writer ⟶ reader | table | read`. */
export function signature(x: Intersection): string {
  return `${x.writer.kind} ⟶ ${x.reader.kind} | ${x.table} | ${elide(x.read.replace(/ \((read up to a row|paginated)(, paginated)?\)$/, ""))}`;
}
