/**
 * The etcd store, shared by replicas: a record is one key `<prefix>r/<kind>/<id>` (value: its references as
 * JSON, then the protobuf binary), and every reference is a key `<prefix>x/<target>/<holder>`. A record with a
 * creator (certificate mode) has `{"refs":[…],"creator":"spiffe://…"}` as its JSON head instead of the bare
 * array, which is what records without one keep (and what older versions wrote). One commit is
 * one etcd transaction whose compares carry every rule: a created key has version 0, an updated or deleted
 * key still has the mod revision the caller read, a referenced key exists, and nothing lies under a deleted
 * record's `x/` prefix. When the transaction fails the store re-reads to name the cause.
 */
import { fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import {
  compare,
  type EtcdClientOptions,
  EtcdStoreBase,
  type ICompare,
  type IKeyValue,
  type IRequestOp,
  keyAfter,
  prefixEnd,
  scanPrefix,
} from "@nsm-ts/base/etcd";
import type { Logger } from "@nsm-ts/base/log";
import { Code, fail, StatusError } from "@nsm-ts/base/status";
import { schemaOf } from "./codec.js";
import {
  checkCreator,
  checkCurrent,
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

/** Default key prefix of the etcd resource store. */
export const DEFAULT_RESOURCE_PREFIX = "/nsm-ts/resources/";

/** Options of `createEtcdResourceStore`: an existing client (kept open on close) or endpoints (a client the store owns). */
export type EtcdResourceStoreOptions = EtcdClientOptions & {
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
  const etcd = new EtcdStoreBase({
    ...(opts.client === undefined ? { endpoints: opts.endpoints } : { client: opts.client }),
    prefix: opts.prefix ?? DEFAULT_RESOURCE_PREFIX,
    describe: (op) => `resources: etcd ${op}`,
    closedMessage: "resources: etcd store closed",
    log: opts.log,
  });
  const { client, prefix, log } = etcd;

  const kindPrefix = (kind: ResourceKind): string => `${prefix}r/${kind}/`;
  const rKey = (kind: ResourceKind, id: string): string => `${prefix}r/${recordKey(kind, id)}`;
  const xPrefix = (kind: ResourceKind, id: string): string => `${prefix}x/${recordKey(kind, id)}/`;
  const xKey = (target: RecordRef, kind: ResourceKind, id: string): string => `${xPrefix(target.kind, target.id)}${recordKey(kind, id)}`;

  const encode = (kind: ResourceKind, value: Message, refs: readonly RecordRef[], creator: string | undefined): Buffer => {
    const head = Buffer.from(JSON.stringify(creator === undefined ? refs : { refs, creator }));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(head.length);
    return Buffer.concat([len, head, toBinary(schemaOf[kind], value)]);
  };
  const decode = (kind: ResourceKind, id: string, buf: Buffer, revision: string): StoredRecord | undefined => {
    try {
      const n = buf.readUInt32BE(0);
      const head = JSON.parse(buf.subarray(4, 4 + n).toString()) as RecordRef[] | { refs: RecordRef[]; creator: string };
      const value = fromBinary(schemaOf[kind], buf.subarray(4 + n));
      if (Array.isArray(head)) return { kind, id, value, refs: head, revision };
      return { kind, id, value, refs: head.refs, revision, creator: head.creator };
    } catch (err) {
      log.warn({ err, kind, id }, "resources: skipping undecodable record");
      return undefined;
    }
  };

  const get = async (kind: ResourceKind, id: string): Promise<StoredRecord | undefined> => {
    const res = await etcd.call("get", () => client.kv.range({ key: Buffer.from(rKey(kind, id)) }));
    const kv = res.kvs[0];
    return kv === undefined ? undefined : decode(kind, id, kv.value, kv.mod_revision);
  };

  /** The first record holding a reference to `kind/id` other than those in `except`, and the revision of the read. */
  const firstHolder = async (kind: ResourceKind, id: string, except: Set<string>): Promise<{ holder?: string; revision: string }> => {
    const p = xPrefix(kind, id);
    const res = await etcd.call("range", () => client.kv.range({ key: Buffer.from(p), range_end: prefixEnd(p), keys_only: true }));
    const k = res.kvs.map((kv) => kv.key.toString().slice(p.length)).find((h) => !except.has(h));
    return { ...(k === undefined ? {} : { holder: holderName(k) }), revision: res.header.revision };
  };

  /** Re-reads after a failed transaction and throws the error that names its cause; returns when nothing is wrong (a race). */
  const explain = async (ops: readonly StoreOp[], created: Set<string>): Promise<void> => {
    const deleting = new Set(ops.filter((o) => o.type === "delete").map((o) => recordKey(o.kind, o.id)));
    for (const op of ops) {
      const cur = await get(op.kind, op.id);
      if (op.type === "create") {
        if (cur !== undefined) ruleFailure.exists(op.kind, op.id);
      } else {
        checkCurrent(op.kind, op.id, cur?.revision, op.revision);
        checkCreator(op.kind, op.id, cur?.creator, op.caller, op.type);
      }
      if (op.type === "delete") {
        const { holder } = await firstHolder(op.kind, op.id, deleting);
        if (holder !== undefined) ruleFailure.referenced(op.kind, op.id, holder);
      } else {
        for (const ref of op.refs) {
          if (created.has(recordKey(ref.kind, ref.id))) continue;
          if ((await get(ref.kind, ref.id)) === undefined) ruleFailure.dangling(op.kind, op.id, ref);
        }
      }
    }
  };

  const attempt = async (ops: readonly StoreOp[]): Promise<{ ok: true; revision: string } | { ok: false; created: Set<string> }> => {
    // Updates and deletes need the current record: its references (to move or drop their keys) and its revision.
    const current = await Promise.all(ops.map((op) => (op.type === "create" ? undefined : get(op.kind, op.id))));
    const compares: ICompare[] = [];
    const success: IRequestOp[] = [];
    const created = new Set<string>();
    const deleting = new Set(ops.filter((o) => o.type === "delete").map((o) => recordKey(o.kind, o.id)));
    const refChecked = new Set<string>();
    for (const [i, op] of ops.entries()) {
      const key = Buffer.from(rKey(op.kind, op.id));
      const cur = current[i];
      if (op.type === "create") {
        compares.push(compare.absent(key));
        created.add(recordKey(op.kind, op.id));
      } else {
        checkCurrent(op.kind, op.id, cur?.revision, op.revision);
        // The mod_revision compare below makes this check atomic with the write: the creator never changes.
        checkCreator(op.kind, op.id, cur?.creator, op.caller, op.type);
        compares.push(compare.modRevision(key, cur?.revision ?? "0"));
      }
      const oldRefs = new Set((cur?.refs ?? []).map((r) => xKey(r, op.kind, op.id)));
      if (op.type === "delete") {
        const { holder, revision } = await firstHolder(op.kind, op.id, deleting);
        if (holder !== undefined) ruleFailure.referenced(op.kind, op.id, holder);
        // Only holders this commit deletes may exist: every key under the prefix must be at most as new as
        // the read, so a reference added since makes the transaction fail.
        compares.push(compare.unchangedSince(xPrefix(op.kind, op.id), revision));
        success.push({ request_delete_range: { key } });
        for (const k of oldRefs) success.push({ request_delete_range: { key: Buffer.from(k) } });
        continue;
      }
      const creator = op.type === "create" ? op.caller?.spiffeId : cur?.creator;
      success.push({ request_put: { key, value: encode(op.kind, op.value, op.refs, creator) } });
      const newRefs = new Set<string>();
      for (const ref of op.refs) {
        const target = recordKey(ref.kind, ref.id);
        const k = xKey(ref, op.kind, op.id);
        newRefs.add(k);
        if (!created.has(target) && !refChecked.has(target)) {
          refChecked.add(target);
          compares.push(compare.present(Buffer.from(rKey(ref.kind, ref.id))));
        }
        if (!oldRefs.has(k)) success.push({ request_put: { key: Buffer.from(k), value: Buffer.alloc(0) } });
      }
      for (const k of oldRefs) if (!newRefs.has(k)) success.push({ request_delete_range: { key: Buffer.from(k) } });
    }
    const res = await etcd.call("txn", () => client.kv.txn({ compare: compares, success, failure: [] }));
    return res.succeeded ? { ok: true, revision: res.header.revision } : { ok: false, created };
  };

  const watches = new WatchQueues();
  /**
   * A watch: the current records read page by page at one revision (at the reader's pace), then an etcd watch
   * from the next revision (etcd replays what happened in between) pumped into the bounded buffer.
   */
  async function* watch(kind: ResourceKind, wo: StoreWatchOptions): AsyncGenerator<StoreWatchEvent, void, undefined> {
    etcd.checkOpen();
    let from = parseFromRevision(wo.fromRevision);
    const base = kindPrefix(kind);
    const idOf = (kv: IKeyValue): string => decodeURIComponent(kv.key.toString().slice(base.length));
    if (from === 0n) {
      let at = "0";
      // One slice of the key space per request (`scanPrefix`), so no request makes etcd count every key left, as
      // paging to the prefix's end would (O(n²) over a large prefix); one in flight keeps the records in key order.
      for await (const page of scanPrefix(etcd, "watch list", base, { pageSize: PAGE, inFlight: 1 })) {
        at = page.revision;
        for (const kv of page.kvs) {
          const record = decode(kind, idOf(kv), kv.value, kv.mod_revision);
          if (record !== undefined) yield { type: "put", record, revision: record.revision };
        }
        if (wo.signal.aborted) return;
      }
      from = BigInt(at);
      yield { type: "synced", revision: at };
    }
    const compacted = (): StatusError =>
      new StatusError(
        Code.OutOfRange,
        `resources: from_revision: the changes after revision ${from} were compacted; watch from revision 0`,
      );
    if (from > 0n) {
      // A read at the start revision fails exactly when the changes after it were compacted. (An etcd watch from a
      // compacted revision would be cancelled right after it is created, before its handlers are attached.)
      await etcd
        .call("watch", () => client.kv.range({ key: Buffer.from(base), limit: 1, revision: String(from) }))
        .catch((err: unknown) => {
          throw err instanceof Error && /compacted/i.test(err.message) ? compacted() : err;
        });
    }
    const q = watches.create(kind, wo.bufferSize);
    let w: { stop(): Promise<void> } | undefined;
    let overflowed = false;
    const push = (ev: StoreWatchEvent): void => {
      if (!q.push(ev) && !overflowed) {
        overflowed = true;
        void w?.stop();
      }
    };
    try {
      w = await etcd
        .watch(
          base,
          {
            put: (kv) => {
              const record = decode(kind, idOf(kv), kv.value, kv.mod_revision);
              if (record !== undefined) push({ type: "put", record, revision: kv.mod_revision });
            },
            delete: (kv, prev) => {
              const id = idOf(kv);
              const record = prev === undefined ? undefined : decode(kind, id, prev.value, kv.mod_revision);
              push({ type: "delete", kind, id, record, revision: kv.mod_revision });
            },
            error: (err) =>
              q.end(
                /compact/i.test(err.message)
                  ? new StatusError(
                      Code.OutOfRange,
                      `resources: from_revision: the changes after revision ${from} were compacted; watch from revision 0`,
                    )
                  : new StatusError(Code.Unavailable, `resources: etcd watch of ${kind} failed: ${err.message}`, { cause: err }),
              ),
          },
          { startRevision: String(from + 1n), prevKv: true, op: "watch" },
        )
        .catch((err: unknown) => {
          // etcd refuses a watch from a compacted revision when it creates it.
          throw err instanceof Error && /compact/i.test(err.message) ? compacted() : err;
        });
      if (overflowed) void w.stop();
      yield* drain(q, wo.signal);
    } finally {
      watches.release(q);
      await w?.stop();
    }
  }

  return {
    exclusive: false,
    watch,
    async watchKind(kind, onChange) {
      const base = kindPrefix(kind);
      const idOf = (kv: IKeyValue): string => decodeURIComponent(kv.key.toString().slice(base.length));
      const w = await etcd.watch(base, {
        put: (kv) => onChange(idOf(kv), false),
        delete: (kv) => onChange(idOf(kv), true),
        // A broken watch only costs conflicts (the store still decides), so it is logged, not escalated.
        error: (err) => log.warn({ err, kind }, "resources: watch failed; allocators fall back to conflicts"),
      });
      return () => void w.stop();
    },
    maxRecordsPerCommit: 50,
    get,
    async list(kind, lo: StoreListOptions = {}) {
      const base = kindPrefix(kind);
      const start = `${base}${encodeURIComponent(lo.prefix ?? "")}`;
      const from = lo.after === undefined ? Buffer.from(start) : keyAfter(rKey(kind, lo.after));
      const limit = lo.limit ?? Infinity;
      const out: StoredRecord[] = [];
      for await (const page of etcd.range("range", from, prefixEnd(start), { pageSize: PAGE })) {
        for (const kv of page.kvs) {
          const rec = decode(kind, decodeURIComponent(kv.key.toString().slice(base.length)), kv.value, kv.mod_revision);
          if (rec === undefined || (lo.filter !== undefined && !lo.filter(rec))) continue;
          out.push(rec);
          if (out.length >= limit) return out;
        }
      }
      return out;
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
    close: () => etcd.close(async () => watches.closeAll("etcd store")),
  };
}

/** `port/p%201` → `port "p 1"`, as the memory store names holders. */
function holderName(key: string): string {
  const slash = key.indexOf("/");
  return `${key.slice(0, slash)} "${decodeURIComponent(key.slice(slash + 1))}"`;
}
