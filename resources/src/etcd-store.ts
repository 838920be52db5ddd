/**
 * The etcd store, shared by replicas: a record is one key `<prefix>r/<kind>/<id>` (value: its references as
 * JSON, then the protobuf binary), and every reference is a key `<prefix>x/<target>/<holder>`. One commit is
 * one etcd transaction whose compares carry every rule: a created key has version 0, an updated or deleted
 * key still has the mod revision the caller read, a referenced key exists, and nothing lies under a deleted
 * record's `x/` prefix. When the transaction fails the store re-reads to name the cause.
 */
import { fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import type { Logger } from "@nsm-ts/base/log";
import { silentLogger } from "@nsm-ts/base/log";
import { Code, fail, StatusError } from "@nsm-ts/base/status";
import { Etcd3, type ICompare, type IKeyValue, type IRequestOp, type Watcher } from "etcd3";
import { schemaOf } from "./codec.js";
import {
  checksRevision,
  describeRecord,
  type RecordRef,
  type ResourceKind,
  type ResourceStore,
  recordKey,
  type StoredRecord,
  type StoreListOptions,
  type StoreOp,
} from "./store.js";

/** Default key prefix of the etcd resource store. */
export const DEFAULT_RESOURCE_PREFIX = "/nsm-ts/resources/";

/** Options of `createEtcdResourceStore`: an existing client (kept open on close) or endpoints (a client the store owns). */
export type EtcdResourceStoreOptions = ({ client: Etcd3; endpoints?: undefined } | { endpoints: string[]; client?: undefined }) & {
  /** Key prefix; default `/nsm-ts/resources/`. */
  prefix?: string;
  /** Where undecodable values are logged; default silent. */
  log?: Logger;
};

/** Records read per range request. */
const PAGE = 500;
/** Retries of a commit whose unchecked revisions moved under it (another replica wrote in between). */
const RETRIES = 8;

/** An etcd store also tells how many records one commit may carry (etcd's `--max-txn-ops`, default 128). */
export interface EtcdResourceStore extends ResourceStore {
  /** Records per commit that stay below etcd's default operation limit. */
  readonly maxRecordsPerCommit: number;
  /** The change feed: a watch on the kind's key prefix (see `ResourceStore.watchKind`). */
  watchKind(kind: ResourceKind, onChange: (id: string, deleted: boolean) => void): Promise<() => void>;
}

/** Creates the etcd-backed store (see the header comment for the key layout and the rules). */
export function createEtcdResourceStore(opts: EtcdResourceStoreOptions): EtcdResourceStore {
  const client = opts.client ?? new Etcd3({ hosts: opts.endpoints ?? [] });
  const owns = opts.client === undefined;
  const prefix = opts.prefix ?? DEFAULT_RESOURCE_PREFIX;
  const log = opts.log ?? silentLogger;
  let closed = false;

  const rKey = (kind: ResourceKind, id: string): string => `${prefix}r/${recordKey(kind, id)}`;
  const xPrefix = (kind: ResourceKind, id: string): string => `${prefix}x/${recordKey(kind, id)}/`;
  const xKey = (target: RecordRef, kind: ResourceKind, id: string): string => `${xPrefix(target.kind, target.id)}${recordKey(kind, id)}`;

  const call = async <R>(op: string, fn: () => Promise<R>): Promise<R> => {
    if (closed) fail(Code.Unavailable, "resources: etcd store closed");
    try {
      return await fn();
    } catch (err) {
      if (err instanceof StatusError) throw err;
      throw new StatusError(Code.Unavailable, `resources: etcd ${op}: ${(err as Error).message}`, { cause: err });
    }
  };

  const encode = (kind: ResourceKind, value: Message, refs: readonly RecordRef[]): Buffer => {
    const head = Buffer.from(JSON.stringify(refs));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(head.length);
    return Buffer.concat([len, head, toBinary(schemaOf[kind], value)]);
  };
  const decode = (kind: ResourceKind, id: string, buf: Buffer, revision: string): StoredRecord | undefined => {
    try {
      const n = buf.readUInt32BE(0);
      const refs = JSON.parse(buf.subarray(4, 4 + n).toString()) as RecordRef[];
      const value = fromBinary(schemaOf[kind], buf.subarray(4 + n));
      return { kind, id, value, refs, revision };
    } catch (err) {
      log.warn({ err, kind, id }, "resources: skipping undecodable record");
      return undefined;
    }
  };

  const get = async (kind: ResourceKind, id: string): Promise<StoredRecord | undefined> => {
    const res = await call("get", () => client.kv.range({ key: Buffer.from(rKey(kind, id)) }));
    const kv = res.kvs[0];
    return kv === undefined ? undefined : decode(kind, id, kv.value, kv.mod_revision);
  };

  const firstHolder = async (kind: ResourceKind, id: string, except: Set<string>): Promise<string | undefined> => {
    const p = xPrefix(kind, id);
    const res = await call("range", () => client.kv.range({ key: Buffer.from(p), range_end: prefixEnd(p), keys_only: true }));
    const k = res.kvs.map((kv) => kv.key.toString().slice(p.length)).find((h) => !except.has(h));
    return k === undefined ? undefined : holderName(k);
  };

  /** Re-reads after a failed transaction and throws the error that names its cause; returns when nothing is wrong (a race). */
  const explain = async (ops: readonly StoreOp[], created: Set<string>): Promise<void> => {
    const deleting = new Set(ops.filter((o) => o.type === "delete").map((o) => recordKey(o.kind, o.id)));
    for (const op of ops) {
      const cur = await get(op.kind, op.id);
      if (op.type === "create") {
        if (cur !== undefined) fail(Code.AlreadyExists, `resources: id: ${describeRecord(op.kind, op.id)} already exists`);
      } else {
        if (cur === undefined) fail(Code.NotFound, `resources: id: ${describeRecord(op.kind, op.id)} not found`);
        if (checksRevision(op.revision) && cur.revision !== op.revision) {
          fail(Code.Aborted, `resources: revision: ${describeRecord(op.kind, op.id)} is at revision ${cur.revision}, not ${op.revision}`);
        }
      }
      if (op.type === "delete") {
        const holder = await firstHolder(op.kind, op.id, deleting);
        if (holder !== undefined)
          fail(Code.FailedPrecondition, `resources: id: ${describeRecord(op.kind, op.id)} is still referenced by ${holder}`);
      } else {
        for (const ref of op.refs) {
          if (created.has(recordKey(ref.kind, ref.id))) continue;
          if ((await get(ref.kind, ref.id)) === undefined) {
            fail(
              Code.FailedPrecondition,
              `resources: ${describeRecord(op.kind, op.id)} references ${describeRecord(ref.kind, ref.id)}, which does not exist`,
            );
          }
        }
      }
    }
  };

  const attempt = async (ops: readonly StoreOp[]): Promise<{ ok: true; revision: string } | { ok: false; created: Set<string> }> => {
    // Updates and deletes need the current record: its references (to move or drop their keys) and its revision.
    const current = await Promise.all(ops.map((op) => (op.type === "create" ? undefined : get(op.kind, op.id))));
    const compare: ICompare[] = [];
    const success: IRequestOp[] = [];
    const created = new Set<string>();
    const deleting = new Set(ops.filter((o) => o.type === "delete").map((o) => recordKey(o.kind, o.id)));
    const refChecked = new Set<string>();
    for (const [i, op] of ops.entries()) {
      const key = Buffer.from(rKey(op.kind, op.id));
      const cur = current[i];
      if (op.type === "create") {
        compare.push({ key, target: "Version", result: "Equal", version: 0 });
        created.add(recordKey(op.kind, op.id));
      } else {
        if (cur === undefined) fail(Code.NotFound, `resources: id: ${describeRecord(op.kind, op.id)} not found`);
        if (checksRevision(op.revision) && cur.revision !== op.revision) {
          fail(Code.Aborted, `resources: revision: ${describeRecord(op.kind, op.id)} is at revision ${cur.revision}, not ${op.revision}`);
        }
        compare.push({ key, target: "Mod", result: "Equal", mod_revision: cur.revision });
      }
      const oldRefs = new Set((cur?.refs ?? []).map((r) => xKey(r, op.kind, op.id)));
      if (op.type === "delete") {
        const p = xPrefix(op.kind, op.id);
        const holders = await call("range", () => client.kv.range({ key: Buffer.from(p), range_end: prefixEnd(p), keys_only: true }));
        const outside = holders.kvs.map((kv) => kv.key.toString().slice(p.length)).find((h) => !deleting.has(h));
        if (outside !== undefined)
          fail(Code.FailedPrecondition, `resources: id: ${describeRecord(op.kind, op.id)} is still referenced by ${holderName(outside)}`);
        // Only holders this commit deletes may exist: every key under the prefix must be at most as new as
        // the read, so a reference added since makes the transaction fail.
        compare.push({
          key: Buffer.from(p),
          range_end: prefixEnd(p),
          target: "Mod",
          result: "Less",
          mod_revision: String(BigInt(holders.header.revision) + 1n),
        });
        success.push({ request_delete_range: { key } });
        for (const k of oldRefs) success.push({ request_delete_range: { key: Buffer.from(k) } });
        continue;
      }
      success.push({ request_put: { key, value: encode(op.kind, op.value, op.refs) } });
      const newRefs = new Set<string>();
      for (const ref of op.refs) {
        const target = recordKey(ref.kind, ref.id);
        const k = xKey(ref, op.kind, op.id);
        newRefs.add(k);
        if (!created.has(target) && !refChecked.has(target)) {
          refChecked.add(target);
          compare.push({ key: Buffer.from(rKey(ref.kind, ref.id)), target: "Version", result: "Greater", version: 0 });
        }
        if (!oldRefs.has(k)) success.push({ request_put: { key: Buffer.from(k), value: Buffer.alloc(0) } });
      }
      for (const k of oldRefs) if (!newRefs.has(k)) success.push({ request_delete_range: { key: Buffer.from(k) } });
    }
    const res = await call("txn", () => client.kv.txn({ compare, success, failure: [] }));
    return res.succeeded ? { ok: true, revision: res.header.revision } : { ok: false, created };
  };

  const watchers = new Set<Watcher>();
  const stopWatcher = async (w: Watcher): Promise<void> => {
    if (!watchers.delete(w)) return;
    w.removeAllListeners();
    await w.cancel().catch((err: unknown) => log.debug({ err }, "resources: watch cancel failed"));
  };

  return {
    exclusive: false,
    async watchKind(kind, onChange) {
      const base = `${prefix}r/${kind}/`;
      const w = await call("watch", () => client.watch().prefix(base).create());
      if (closed) {
        await w.cancel().catch(() => undefined);
        fail(Code.Unavailable, "resources: etcd store closed");
      }
      watchers.add(w);
      const idOf = (kv: IKeyValue): string => decodeURIComponent(kv.key.toString().slice(base.length));
      w.on("put", (kv: IKeyValue) => onChange(idOf(kv), false));
      w.on("delete", (kv: IKeyValue) => onChange(idOf(kv), true));
      // A broken watch only costs conflicts (the store still decides), so it is logged, not escalated.
      w.on("error", (err: Error) => log.warn({ err, kind }, "resources: watch failed; allocators fall back to conflicts"));
      return () => void stopWatcher(w);
    },
    maxRecordsPerCommit: 50,
    get,
    async list(kind, lo: StoreListOptions = {}) {
      const base = `${prefix}r/${kind}/`;
      const end = prefixEnd(`${base}${encodeURIComponent(lo.prefix ?? "")}`);
      let from = Buffer.from(lo.after === undefined ? `${base}${encodeURIComponent(lo.prefix ?? "")}` : `${rKey(kind, lo.after)}\0`);
      const limit = lo.limit ?? Infinity;
      const out: StoredRecord[] = [];
      for (;;) {
        const res = await call("range", () => client.kv.range({ key: from, range_end: end, limit: PAGE }));
        for (const kv of res.kvs) {
          const rec = decode(kind, decodeURIComponent(kv.key.toString().slice(base.length)), kv.value, kv.mod_revision);
          if (rec === undefined || (lo.filter !== undefined && !lo.filter(rec))) continue;
          out.push(rec);
          if (out.length >= limit) return out;
        }
        const last = res.kvs[res.kvs.length - 1];
        if (!res.more || last === undefined) return out;
        from = Buffer.concat([last.key, Buffer.from([0])]);
      }
    },
    async commit(ops) {
      if (ops.length === 0) return [];
      for (let i = 0; ; i++) {
        const r = await attempt(ops);
        if (r.ok) return ops.map(() => r.revision);
        await explain(ops, r.created);
        if (i >= RETRIES) fail(Code.Aborted, "resources: commit kept racing with concurrent writers; retry");
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([...watchers].map(stopWatcher));
      if (owns) client.close();
    },
  };
}

/** The end of etcd's prefix range: the prefix with its last byte incremented. */
function prefixEnd(p: string): Buffer {
  const b = Buffer.from(p);
  for (let i = b.length - 1; i >= 0; i--) {
    const byte = b[i];
    if (byte !== undefined && byte < 0xff) {
      const out = Buffer.from(b.subarray(0, i + 1));
      out[i] = byte + 1;
      return out;
    }
  }
  return Buffer.from([0]);
}

/** `port/p%201` → `port "p 1"`, as the memory store names holders. */
function holderName(key: string): string {
  const slash = key.indexOf("/");
  return `${key.slice(0, slash)} "${decodeURIComponent(key.slice(slash + 1))}"`;
}
