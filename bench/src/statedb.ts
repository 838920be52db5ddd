/**
 * State table throughput: inserts/s (one big transaction and one transaction per object) and lookups/s
 * by primary key, by a non-unique secondary index and by longest-prefix match, over 100k objects.
 * Compare with the anchor "StateDB ≈1–3 M inserts/s in Go". Run: `node bench/dist/statedb.js`.
 */
import { loadavg } from "node:os";
import { createDb } from "@nsm-ts/statedb";
import { createReconciler, pendingStatus, type Status } from "@nsm-ts/statedb/reconciler";

interface Endpoint {
  readonly name: string;
  readonly service: string;
  readonly labels: readonly string[];
  readonly prefix: string;
}

const N = 100_000;
const LOOKUPS = 100_000;

function endpoint(i: number, gen = 0): Endpoint {
  const hi = (i >>> 16).toString(16);
  const lo = (i & 0xffff).toString(16);
  return {
    name: `ep-${String(i).padStart(6, "0")}`,
    service: `svc-${i % 1000}`,
    labels: [`app=a${i % 100}`, `gen=${gen}`],
    prefix: `fd00:0:${hi}:${lo}::/64`,
  };
}

function setup() {
  const db = createDb();
  const table = db.createTable({
    name: "endpoints",
    primaryKey: (e: Endpoint) => e.name,
    indexes: {
      byService: { kind: "multi", keys: (e: Endpoint) => [e.service] },
      byLabel: { kind: "multi", keys: (e: Endpoint) => e.labels },
      byPrefix: { kind: "lpm", prefixes: (e: Endpoint) => [e.prefix] },
    },
  });
  return { db, table };
}

function rate(n: number, ms: number): string {
  const r = (n / ms) * 1000;
  return r >= 1e6 ? `${(r / 1e6).toFixed(2)} M/s` : `${(r / 1e3).toFixed(0)} k/s`;
}

/**
 * CPU milliseconds (user + system) spent in `fn`: the build machine is shared, and CPU time is far less
 * disturbed by other processes than wall time.
 */
function time(fn: () => void): number {
  const c0 = process.cpuUsage();
  fn();
  return cpuMs(c0);
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(since);
  return (c.user + c.system) / 1000;
}

/** Runs every measurement and returns result lines (name, operations, rate). */
export function runStatedbBench(): Array<{ name: string; ops: number; ms: number; rate: string }> {
  const out: Array<{ name: string; ops: number; ms: number; rate: string }> = [];
  const record = (name: string, ops: number, ms: number): void => {
    out.push({ name, ops, ms: Math.round(ms), rate: rate(ops, ms) });
  };
  const objs = Array.from({ length: N }, (_, i) => endpoint(i));

  // Baseline: a plain mutable Map (no snapshots, no indexes, no revisions) in the same run.
  {
    const m = new Map<string, Endpoint>();
    record(
      "baseline: Map.set",
      N,
      time(() => {
        for (const o of objs) m.set(o.name, o);
      }),
    );
    const keys = Array.from({ length: LOOKUPS }, (_, i) => `ep-${String((i * 7919) % N).padStart(6, "0")}`);
    let n = 0;
    record(
      "baseline: Map.get",
      LOOKUPS,
      time(() => {
        for (const k of keys) if (m.get(k)) n++;
      }),
    );
    if (n !== LOOKUPS) throw new Error("statedb bench: baseline lookups missed");
  }

  // Primary key only (the closest to StateDB's basic insert benchmark).
  {
    const db = createDb();
    const t = db.createTable({ name: "plain", primaryKey: (e: Endpoint) => e.name });
    const ms = time(() => {
      const w = db.writeTxn(t);
      for (const o of objs) t.insert(w, o);
      w.commit();
    });
    record("insert, primary key only, 1 txn", N, ms);
  }

  const { db, table } = setup();
  record(
    "insert, primary + 2 multi + LPM(v6), 1 txn",
    N,
    time(() => {
      const w = db.writeTxn(table);
      for (const o of objs) table.insert(w, o);
      w.commit();
    }),
  );
  const updates = Array.from({ length: N }, (_, i) => endpoint(i, 1));
  record(
    "update existing, all indexes, 1 txn",
    N,
    time(() => {
      const w = db.writeTxn(table);
      for (const o of updates) table.insert(w, o);
      w.commit();
    }),
  );
  const small = 5_000;
  record(
    "update existing, all indexes, 1 txn per object",
    small,
    time(() => {
      for (let i = 0; i < small; i++) {
        const w = db.writeTxn(table);
        table.insert(w, endpoint(i, 2));
        w.commit();
      }
    }),
  );

  const r = db.readTxn();
  const keys = Array.from({ length: LOOKUPS }, (_, i) => `ep-${String((i * 7919) % N).padStart(6, "0")}`);
  let hits = 0;
  record(
    "lookup by primary key",
    LOOKUPS,
    time(() => {
      for (const k of keys) if (table.get(r, k)) hits++;
    }),
  );
  const svcs = Array.from({ length: LOOKUPS }, (_, i) => `svc-${(i * 31) % 1000}`);
  record(
    "lookup by non-unique index (first of 100)",
    LOOKUPS,
    time(() => {
      for (const s of svcs) if (table.getBy(r, "byService", s)) hits++;
    }),
  );
  const listN = 10_000;
  let listed = 0;
  record(
    "list by non-unique index (100 objects each)",
    listN,
    time(() => {
      for (let i = 0; i < listN; i++) listed += table.list(r, "byService", svcs[i] as string).length;
    }),
  );
  const addrs = Array.from({ length: LOOKUPS }, (_, i) => {
    const j = (i * 7919) % N;
    return `fd00:0:${(j >>> 16).toString(16)}:${(j & 0xffff).toString(16)}::${(i & 0xffff).toString(16)}`;
  });
  record(
    "LPM lookup (IPv6 address → /64)",
    LOOKUPS,
    time(() => {
      for (const a of addrs) if (table.lpm(r, "byPrefix", a)) hits++;
    }),
  );
  let seen = 0;
  record(
    "change stream: one batch of every object from 0",
    N,
    time(() => {
      seen = table.changeBatch(r, 0).changes.length;
    }),
  );
  if (seen !== N) throw new Error(`statedb bench: change batch had ${seen}`);
  if (hits !== 3 * LOOKUPS || listed !== listN * 100) throw new Error(`statedb bench: wrong results ${hits} ${listed}`);

  record(
    "read snapshot + delete 1 in its own txn (100k live)",
    2_000,
    time(() => {
      for (let i = 0; i < 2_000; i++) {
        db.readTxn();
        const w = db.writeTxn(table);
        table.deleteKey(w, `ep-${String(i).padStart(6, "0")}`);
        w.commit();
      }
    }),
  );
  return out;
}

/**
 * Reconciler throughput with no-op operations: objects taken from pending to done per second (the
 * engine's own cost: change stream, work queue, batched status writes), for a bulk sync and for updates
 * committed one per transaction while it runs.
 */
export async function runReconcilerBench(): Promise<Array<{ name: string; ops: number; ms: number; rate: string }>> {
  interface Route {
    readonly id: string;
    readonly status: Status;
  }
  const db = createDb();
  const table = db.createTable({ name: "routes", primaryKey: (r: Route) => r.id });
  const ac = new AbortController();
  let applied = 0;
  const rec = createReconciler({
    table,
    getStatus: (r) => r.status,
    setStatus: (r, status) => ({ ...r, status }),
    ops: {
      update: async () => void applied++,
      delete: async () => {},
    },
    signal: ac.signal,
  });
  const out: Array<{ name: string; ops: number; ms: number; rate: string }> = [];
  const n = 20_000;
  let c0 = process.cpuUsage();
  const rev = await db.update(table, (txn) => {
    for (let i = 0; i < n; i++) table.insert(txn, { id: `r${i}`, status: pendingStatus() });
    return db.revision();
  });
  await rec.waitReconciled(rev);
  let ms = cpuMs(c0);
  out.push({ name: "reconcile 20k pending objects (one insert txn)", ops: n, ms: Math.round(ms), rate: rate(n, ms) });
  const m = 5_000;
  c0 = process.cpuUsage();
  let last = 0;
  for (let i = 0; i < m; i++) {
    last = await db.update(table, (txn) => {
      table.insert(txn, { id: `r${i}`, status: pendingStatus() });
      return db.revision();
    });
  }
  await rec.waitReconciled(last);
  ms = cpuMs(c0);
  out.push({ name: "reconcile 5k updates, one txn each", ops: m, ms: Math.round(ms), rate: rate(m, ms) });
  ac.abort();
  await rec.stopped;
  if (applied < n + 1) throw new Error(`statedb bench: reconciler applied ${applied}`);
  return out;
}

const isMain = process.argv[1]?.endsWith("statedb.js") ?? false;
if (isMain) {
  const t0 = performance.now();
  const rows = [...runStatedbBench(), ...(await runReconcilerBench())];
  for (const row of rows) {
    process.stdout.write(`${row.name.padEnd(52)} ${String(row.ops).padStart(7)} ops ${String(row.ms).padStart(6)} ms cpu  ${row.rate}\n`);
  }
  process.stdout.write(
    `total ${((performance.now() - t0) / 1000).toFixed(1)} s wall, node ${process.version}, load average ${loadavg()[0]?.toFixed(1)}\n`,
  );
}
