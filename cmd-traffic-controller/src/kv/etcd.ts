/**
 * `Kv` on etcd, shared by every replica: transactions are etcd transactions with `mod_revision` compares, the
 * list is one paged read at one revision, watches start at a given revision (so none is missed between a read
 * and its watch), and a lock is a key created only if absent, bound to a lease the client keeps alive.
 */
import { compare as cmp, type Etcd3, EtcdStoreBase, type ICompare, type IKeyValue, type IRequestOp, scanPrefix } from "@nsm-ts/base/etcd";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import type { Kv, KvEntry, KvLock } from "./kv.js";

/** Options of `createEtcdKv`. */
export interface EtcdKvOptions {
  /** etcd client URLs (a client the store owns), or `client` (kept open on close). */
  endpoints?: string[];
  client?: Etcd3;
  /** Key prefix; default `/nsmts/intents/`. */
  prefix?: string;
  log?: Logger;
}

const toEntry = (prefix: string, kv: IKeyValue): KvEntry => ({
  key: kv.key.toString().slice(prefix.length),
  value: kv.value.toString(),
  modRevision: kv.mod_revision,
});

/** Creates the etcd-backed store. */
export function createEtcdKv(opts: EtcdKvOptions): Kv {
  const prefix = opts.prefix ?? "/nsmts/intents/";
  const log = opts.log ?? silentLogger;
  const clientOpts = opts.client !== undefined ? { client: opts.client } : { endpoints: opts.endpoints ?? [] };
  const base = new EtcdStoreBase({
    ...clientOpts,
    prefix,
    log,
    describe: (op) => `traffic-controller store (etcd): ${op}`,
    closedMessage: "traffic-controller store (etcd): closed",
  });
  const k = (key: string) => Buffer.from(prefix + key);
  const locks = new Set<KvLock>();
  return {
    async list(p) {
      const entries: KvEntry[] = [];
      let revision = "0";
      // Slices of the key space (`scanPrefix`): paging to the prefix's end makes etcd count every key left per page.
      for await (const page of scanPrefix(base, "list", prefix + p, { pageSize: 500, inFlight: 1 })) {
        revision = page.revision;
        for (const kv of page.kvs) entries.push(toEntry(prefix, kv));
      }
      return { entries, revision };
    },
    async get(key) {
      const res = await base.call("get", () => base.client.kv.range({ key: k(key) }));
      const kv = res.kvs[0];
      return kv === undefined ? undefined : toEntry(prefix, kv);
    },
    async txn(t) {
      const compare: ICompare[] = t.compares.map((c) => cmp.modRevision(k(c.key), c.modRevision));
      const success: IRequestOp[] = [
        ...t.deletes.map((key): IRequestOp => ({ request_delete_range: { key: k(key) } })),
        ...t.puts.map((p): IRequestOp => ({ request_put: { key: k(p.key), value: Buffer.from(p.value) } })),
      ];
      const res = await base.call("txn", () => base.client.kv.txn({ compare, success, failure: [] }));
      return { succeeded: res.succeeded, revision: res.header.revision };
    },
    async watch(p, afterRevision, onEvent, onError) {
      const w = await base.watch(
        prefix + p,
        {
          put: (kv) => onEvent({ type: "put", entry: toEntry(prefix, kv) }),
          delete: (kv) => onEvent({ type: "delete", entry: toEntry(prefix, kv) }),
          error: onError,
        },
        { startRevision: String(BigInt(afterRevision) + 1n) },
      );
      return w;
    },
    async tryLock(name, ttlMs) {
      const key = `lock/${name}`;
      const lease = base.client.lease(Math.max(1, Math.ceil(ttlMs / 1000)), { autoKeepAlive: true });
      const ac = new AbortController();
      lease.on("lost", (err) => {
        log.warn({ err, lock: name }, "traffic-controller: lock lease lost");
        ac.abort();
      });
      try {
        const id = await base.call("lock lease", () => lease.grant());
        const res = await base.call("lock", () =>
          base.client.kv.txn({
            compare: [cmp.absent(k(key))],
            success: [{ request_put: { key: k(key), value: Buffer.from(id), lease: id } }],
            failure: [],
          }),
        );
        if (!res.succeeded) {
          await lease.revoke().catch(() => undefined);
          return undefined;
        }
        const lock: KvLock = {
          compare: { key, modRevision: res.header.revision },
          lost: ac.signal,
          release: async () => {
            if (!locks.delete(lock)) return;
            ac.abort();
            await lease.revoke().catch((err: unknown) => log.debug({ err, lock: name }, "traffic-controller: lock revoke failed"));
          },
        };
        locks.add(lock);
        return lock;
      } catch (err) {
        await lease.revoke().catch(() => undefined);
        throw err;
      }
    },
    async close() {
      await Promise.all([...locks].map((l) => l.release()));
      await base.close();
    },
  };
}
