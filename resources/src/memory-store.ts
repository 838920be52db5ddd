/**
 * The memory store: one statedb table of records keyed `kind/id`, with a non-unique index of the references
 * each record holds, so "is anything still referencing this?" is one index lookup inside the same write
 * transaction that deletes it. Commits are statedb write transactions: every operation or none. A row keeps
 * its creator's SPIFFE ID beside the message (`creator`), checked by the owner rule inside the same transaction.
 */
import type { Message } from "@bufbuild/protobuf";
import { Code, fail, StatusError } from "@nsm-ts/base/status";
import { type Change, createDb, type Db, ResyncRequiredError, type Table, type WriteTxn } from "@nsm-ts/statedb";
import {
  checkCreator,
  checkCurrent,
  describeRecord,
  type RecordRef,
  type ResourceKind,
  type ResourceStore,
  recordKey,
  ruleFailure,
  type StoredRecord,
  type StoreListOptions,
  type StoreOp,
  type StoreWatchEvent,
  type StoreWatchOptions,
} from "./store.js";
import { drain, parseFromRevision, WatchQueues } from "./watch.js";

interface Row {
  readonly key: string;
  readonly kind: ResourceKind;
  readonly id: string;
  readonly value: Message;
  readonly refs: readonly RecordRef[];
  /** The creator's SPIFFE ID (certificate mode), see `StoredRecord.creator`. */
  readonly creator?: string | undefined;
}

/** Options of `createMemoryResourceStore`. */
export interface MemoryResourceStoreOptions {
  /** An existing statedb database to create the table in (to commit or watch it with other tables); default a new one. */
  db?: Db;
  /** Table name; default "resources". */
  tableName?: string;
}

/** A memory store exposing its statedb table for watches and change streams. */
export interface MemoryResourceStore extends ResourceStore {
  /** The database holding the table. */
  readonly db: Db;
  /** The table of records (primary key `kind/id`, index `byRef` of referenced keys). */
  readonly table: Table<Row, "byRef">;
}

/** Creates the default, in-process store on statedb tables. */
export function createMemoryResourceStore(opts: MemoryResourceStoreOptions = {}): MemoryResourceStore {
  const db = opts.db ?? createDb();
  const table = db.createTable<Row, "byRef">({
    name: opts.tableName ?? "resources",
    primaryKey: (r) => r.key,
    indexes: { byRef: { kind: "multi", keys: (r) => r.refs.map((x) => recordKey(x.kind, x.id)) } },
  });
  let closed = false;
  const open = (): void => {
    if (closed) fail(Code.Unavailable, "resources: memory store closed");
  };
  const toRecord = (row: Row, revision: number): StoredRecord => ({
    kind: row.kind,
    id: row.id,
    value: row.value,
    refs: row.refs,
    revision: String(revision),
    ...(row.creator === undefined ? {} : { creator: row.creator }),
  });

  const checkRefs = (txn: WriteTxn, op: { kind: ResourceKind; id: string; refs: readonly RecordRef[] }): void => {
    for (const ref of op.refs) if (table.get(txn, recordKey(ref.kind, ref.id)) === undefined) ruleFailure.dangling(op.kind, op.id, ref);
  };
  /** The revision and owner rules of an update or delete; returns the record's creator, which an update keeps. */
  const checkWrite = (txn: WriteTxn, op: StoreOp & { type: "update" | "delete" }): string | undefined => {
    const entry = table.getEntry(txn, recordKey(op.kind, op.id));
    checkCurrent(op.kind, op.id, entry === undefined ? undefined : String(entry.revision), op.revision);
    const creator = entry?.object.creator;
    checkCreator(op.kind, op.id, creator, op.caller, op.type);
    return creator;
  };

  const watches = new WatchQueues();
  const toEvent = (c: Change<Row>): StoreWatchEvent => {
    const record = toRecord(c.object, c.revision);
    const revision = String(c.revision);
    return c.deleted ? { type: "delete", kind: c.object.kind, id: c.object.id, record, revision } : { type: "put", record, revision };
  };

  /**
   * A watch: the current records from one snapshot (at the reader's pace), then the table's change stream
   * (statedb keeps the tombstones a running stream has not passed) pumped into the bounded buffer.
   */
  async function* watch(kind: ResourceKind, wo: StoreWatchOptions): AsyncGenerator<StoreWatchEvent, void, undefined> {
    open();
    const requested = parseFromRevision(wo.fromRevision);
    if (requested > BigInt(Number.MAX_SAFE_INTEGER))
      fail(Code.OutOfRange, `resources: from_revision: ${requested} is beyond the store's revision`);
    const prefix = recordKey(kind, "");
    const txn = db.readTxn();
    let from = Number(requested);
    const current: StoredRecord[] = [];
    if (from === 0) {
      table.scan(txn, { prefix }, (e) => {
        current.push(toRecord(e.object, e.revision));
        return true;
      });
      from = table.revision(txn);
    }
    const q = watches.create(kind, wo.bufferSize);
    const stop = new AbortController();
    const onAbort = (): void => stop.abort();
    wo.signal.addEventListener("abort", onAbort);
    const pump = async (): Promise<void> => {
      try {
        for await (const c of table.changes(from, stop.signal)) {
          if (c.object.kind !== kind) continue;
          if (!q.push(toEvent(c))) return stop.abort();
        }
        q.end();
      } catch (err) {
        q.end(
          err instanceof ResyncRequiredError
            ? new StatusError(
                Code.OutOfRange,
                `resources: from_revision: the changes after revision ${from} are gone; watch from revision 0`,
              )
            : err,
        );
      }
    };
    void pump();
    try {
      for (const record of current) {
        if (wo.signal.aborted) return;
        yield { type: "put", record, revision: record.revision };
      }
      if (requested === 0n) yield { type: "synced", revision: String(from) };
      yield* drain(q, wo.signal);
    } finally {
      stop.abort();
      wo.signal.removeEventListener("abort", onAbort);
      watches.release(q);
    }
  }

  return {
    exclusive: true,
    watch,
    db,
    table,
    async get(kind, id) {
      open();
      const e = table.getEntry(db.readTxn(), recordKey(kind, id));
      return e === undefined ? undefined : toRecord(e.object, e.revision);
    },
    async list(kind, lo: StoreListOptions = {}) {
      open();
      const txn = db.readTxn();
      const after = lo.after === undefined ? undefined : recordKey(kind, lo.after);
      const limit = lo.limit ?? Infinity;
      const out: StoredRecord[] = [];
      if (limit <= 0) return out;
      table.scan(txn, { prefix: recordKey(kind, lo.prefix ?? ""), ...(after === undefined ? {} : { after }) }, (e) => {
        const rec = toRecord(e.object, e.revision);
        if (lo.filter === undefined || lo.filter(rec)) out.push(rec);
        return out.length < limit;
      });
      return out;
    },
    async commit(ops: readonly StoreOp[]) {
      open();
      // A record deleted by this same commit may reference another one it deletes (a port and its addresses).
      const deleting = new Set(ops.filter((o) => o.type === "delete").map((o) => recordKey(o.kind, o.id)));
      return db.update([table], (txn) => {
        const keys: string[] = [];
        for (const op of ops) {
          const key = recordKey(op.kind, op.id);
          keys.push(key);
          switch (op.type) {
            case "create":
              if (table.get(txn, key) !== undefined) ruleFailure.exists(op.kind, op.id);
              checkRefs(txn, op);
              table.insert(txn, { key, kind: op.kind, id: op.id, value: op.value, refs: op.refs, creator: op.caller?.spiffeId });
              break;
            case "update": {
              const creator = checkWrite(txn, op);
              checkRefs(txn, op);
              table.insert(txn, { key, kind: op.kind, id: op.id, value: op.value, refs: op.refs, creator });
              break;
            }
            case "delete": {
              checkWrite(txn, op);
              const holder = table.list(txn, "byRef", key).find((h) => !deleting.has(h.key));
              if (holder !== undefined) ruleFailure.referenced(op.kind, op.id, describeRecord(holder.kind, holder.id));
              table.deleteKey(txn, key);
              break;
            }
          }
        }
        // Deletes report the commit's revision: the last one the transaction took.
        const last = String(table.revision(txn));
        return keys.map((k, i) => (ops[i]?.type === "delete" ? last : String(table.getEntry(txn, k)?.revision ?? last)));
      });
    },
    async close() {
      closed = true;
      watches.closeAll("memory store");
    },
  };
}
