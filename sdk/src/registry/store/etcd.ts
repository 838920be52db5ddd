/**
 * The etcd registry store: one key per entry (`<prefix><kind>/<name>`, value = the protobuf binary), a lease per
 * expiring registration so etcd itself deletes it at its expiration (even when no registry replica is alive), watches
 * started right after the snapshot's revision feeding Find(watch), and `mod_revision` compare-and-swap through
 * transactions so two registry replicas never lose an update.
 */
import { clone, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Etcd3, type IKeyValue, type IRequestOp, type Watcher } from "etcd3";
import type { RegistryEntry } from "../core/index.js";
import { realClock, type Clock } from "../../tools/clock/index.js";
import type { Logger } from "../../tools/log/index.js";
import { silentLogger } from "../../tools/log/index.js";
import { Code, StatusError, fail } from "../../tools/status/index.js";
import { kindSpec, type KindSpec } from "./kind.js";
import {
  DEFAULT_WATCH_BUFFER,
  type FindOptions,
  type PutOptions,
  type RegistryEntryOf,
  type RegistryKind,
  type RegistryStore,
  type StoreEvent,
  type VersionedEntry,
} from "./types.js";
import { WatchQueue } from "./watch-queue.js";

/** Default key prefix of the etcd store. */
export const DEFAULT_ETCD_PREFIX = "/nsm-ts/registry/";

/** Options of `createEtcdStore`: an existing client (kept open on close) or endpoints (a client the store owns). */
export type EtcdStoreOptions = ({ client: Etcd3; endpoints?: undefined } | { endpoints: string[]; client?: undefined }) & {
  /** Key prefix; default `/nsm-ts/registry/`. Entries live under `<prefix><kind>/<name>`. */
  prefix?: string;
  /** Time source used to turn `expiresAtMs` into a lease TTL; default the real clock. */
  clock?: Clock;
  /** Live events buffered per watcher before it is cut off with `ResourceExhausted`; default `DEFAULT_WATCH_BUFFER`. */
  watchBuffer?: number;
  /** Where anomalies (undecodable values, lease revoke failures) are logged; default silent. */
  logger?: Logger;
};

/** Entries read per range request: keeps each response far below gRPC's 4 MiB default message limit. */
const PAGE_SIZE = 1000;

/** Creates an etcd-backed store of network services (`"ns"`) or endpoints (`"nse"`). */
export function createEtcdStore<K extends RegistryKind>(kind: K, opts: EtcdStoreOptions): RegistryStore<RegistryEntryOf[K]> {
  return new EtcdStore(kindSpec(kind), opts);
}

interface Live<T> {
  entry: T;
  deleted: boolean;
  revision: string;
}

class EtcdStore<T extends RegistryEntry> implements RegistryStore<T> {
  readonly kind: RegistryKind;
  private readonly what: string;
  private readonly client: Etcd3;
  private readonly ownsClient: boolean;
  private readonly keyPrefix: string;
  private readonly clock: Clock;
  private readonly watchBuffer: number;
  private readonly log: Logger;
  private readonly active = new Set<{ queue: WatchQueue<Live<T>>; watcher: Watcher | undefined }>();
  private closed = false;

  constructor(
    private readonly spec: KindSpec<T>,
    opts: EtcdStoreOptions,
  ) {
    this.kind = spec.kind;
    this.what = `registry store (etcd ${spec.kind})`;
    if (opts.client !== undefined) {
      this.client = opts.client;
      this.ownsClient = false;
    } else {
      if (opts.endpoints.length === 0) fail(Code.InvalidArgument, `${this.what}: endpoints is empty`);
      this.client = new Etcd3({ hosts: opts.endpoints });
      this.ownsClient = true;
    }
    this.keyPrefix = `${opts.prefix ?? DEFAULT_ETCD_PREFIX}${spec.kind}/`;
    this.clock = opts.clock ?? realClock;
    this.watchBuffer = opts.watchBuffer ?? DEFAULT_WATCH_BUFFER;
    if (!(this.watchBuffer >= 1)) fail(Code.InvalidArgument, `${this.what}: watchBuffer must be at least 1`);
    this.log = opts.logger ?? silentLogger;
  }

  async get(name: string): Promise<T | undefined> {
    return (await this.getVersioned(name))?.entry;
  }

  async getVersioned(name: string): Promise<VersionedEntry<T> | undefined> {
    this.checkOpen();
    const res = await this.call("get", () => this.client.kv.range({ key: this.key(name) }));
    const kv = res.kvs[0];
    if (kv === undefined) return undefined;
    const entry = this.decode(kv.value, name);
    return entry === undefined ? undefined : { entry, revision: kv.mod_revision };
  }

  async put(entry: T, opts: PutOptions = {}): Promise<{ revision: string }> {
    this.checkOpen();
    const name = entry.name;
    if (name === "") fail(Code.InvalidArgument, `${this.what}: entry.name is empty`);
    const key = this.key(name);
    let lease = "0";
    if (opts.expiresAtMs !== undefined) {
      // etcd counts TTLs in whole seconds; rounding up never expires an entry before its time.
      const ttl = Math.max(1, Math.ceil((opts.expiresAtMs - this.clock.now()) / 1000));
      lease = (await this.call("lease grant", () => this.client.leaseClient.leaseGrant({ TTL: ttl }))).ID;
    }
    const putOp: IRequestOp = {
      request_put: { key, value: Buffer.from(toBinary(this.spec.schema, entry)), lease, prev_kv: true },
    };
    let res;
    try {
      res = await this.call("put", () =>
        this.client.kv.txn({
          compare:
            opts.expectRevision === undefined
              ? []
              : [{ key, target: "Mod", result: "Equal", mod_revision: opts.expectRevision }],
          success: [putOp],
          failure: [{ request_range: { key, keys_only: true } }],
        }),
      );
    } catch (err) {
      this.revoke(lease);
      throw err;
    }
    if (!res.succeeded) {
      this.revoke(lease);
      const have = res.responses[0]?.response_range?.kvs[0]?.mod_revision ?? "0";
      fail(Code.Aborted, `${this.what}: ${name} is at revision ${have}, not the expected ${opts.expectRevision}`);
    }
    // The previous registration's lease now holds no key; revoke it so it does not linger until its TTL.
    const prevLease = res.responses[0]?.response_put?.prev_kv?.lease;
    if (prevLease !== undefined && prevLease !== lease) this.revoke(prevLease);
    return { revision: res.header.revision };
  }

  async delete(name: string): Promise<T | undefined> {
    this.checkOpen();
    const res = await this.call("delete", () => this.client.kv.deleteRange({ key: this.key(name), prev_kv: true }));
    const prev = res.prev_kvs[0];
    if (prev === undefined) return undefined;
    this.revoke(prev.lease);
    return this.decode(prev.value, name);
  }

  find(template: T, opts: FindOptions): AsyncIterable<StoreEvent<T>> {
    return this.findGen(clone(this.spec.schema, template), opts);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new StatusError(Code.Unavailable, `${this.what}: store closed`);
    const cancels: Promise<void>[] = [];
    for (const a of this.active) {
      a.queue.fail(err);
      if (a.watcher !== undefined) cancels.push(a.watcher.cancel().catch(() => undefined));
    }
    this.active.clear();
    await Promise.all(cancels);
    if (this.ownsClient) this.client.close();
  }

  private async *findGen(template: T, opts: FindOptions): AsyncGenerator<StoreEvent<T>> {
    this.checkOpen();
    const byName = template.name !== "";
    const start = byName ? `${this.keyPrefix}${template.name}` : this.keyPrefix;
    const end = byName ? undefined : prefixEnd(start);
    // Page through one consistent revision: the first page fixes it, later pages read at it.
    const snapshot: StoreEvent<T>[] = [];
    let revision: string | undefined;
    let from = Buffer.from(start);
    for (;;) {
      const res = await this.call("find", () =>
        this.client.kv.range({
          key: from,
          ...(end === undefined ? {} : { range_end: end, limit: PAGE_SIZE }),
          ...(revision === undefined ? {} : { revision }),
        }),
      );
      revision ??= res.header.revision;
      for (const kv of res.kvs) {
        const entry = this.decode(kv.value, kv.key.toString());
        if (entry !== undefined && this.spec.match(template, entry)) {
          snapshot.push({ entry, deleted: false, revision: kv.mod_revision });
        }
      }
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || last === undefined) break;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }

    let handle: { queue: WatchQueue<Live<T>>; watcher: Watcher | undefined } | undefined;
    if (opts.watch && !opts.signal.aborted) {
      // Watch from the revision after the snapshot: etcd replays every change since, so nothing is lost or repeated.
      const queue = new WatchQueue<Live<T>>(this.watchBuffer, this.what);
      handle = { queue, watcher: undefined };
      this.active.add(handle);
      const builder = this.client.watch().withPreviousKV().startRevision((BigInt(revision) + 1n).toString());
      const h = handle;
      try {
        h.watcher = await (byName ? builder.key(start) : builder.prefix(start)).create();
      } catch (err) {
        this.active.delete(h);
        throw new StatusError(Code.Unavailable, `${this.what}: watch failed: ${String(err)}`, { cause: err });
      }
      this.attach(h.watcher, template, queue, () => this.drop(h));
      if (this.closed) this.drop(h);
    }
    try {
      for (const ev of snapshot) {
        if (opts.signal.aborted) return;
        yield ev;
      }
      if (handle === undefined) return;
      for (;;) {
        const ev = await handle.queue.next(opts.signal);
        if (ev === undefined) return;
        yield { entry: clone(this.spec.schema, ev.entry), deleted: ev.deleted, revision: ev.revision };
      }
    } finally {
      if (handle !== undefined) this.drop(handle);
    }
  }

  private attach(watcher: Watcher, template: T, queue: WatchQueue<Live<T>>, overflow: () => void): void {
    const deliver = (entry: T | undefined, deleted: boolean, revision: string): void => {
      if (entry === undefined || !this.spec.match(template, entry)) return;
      if (!queue.push({ entry, deleted, revision })) overflow();
    };
    watcher.on("put", (kv: IKeyValue) => {
      deliver(this.decode(kv.value, kv.key.toString()), false, kv.mod_revision);
    });
    watcher.on("delete", (kv: IKeyValue, prev?: IKeyValue) => {
      const name = kv.key.toString().slice(this.keyPrefix.length);
      // Without the previous value (compacted away) only the name is known; deliver that rather than nothing.
      const entry =
        prev !== undefined && prev.value.length > 0
          ? this.decode(prev.value, name)
          : this.decode(new Uint8Array(), name, name);
      deliver(entry, true, kv.mod_revision);
    });
    watcher.on("error", (err: Error) => {
      queue.fail(new StatusError(Code.Unavailable, `${this.what}: watch failed: ${err.message}`, { cause: err }));
      overflow();
    });
  }

  private drop(handle: { queue: WatchQueue<Live<T>>; watcher: Watcher | undefined }): void {
    if (!this.active.delete(handle)) return;
    handle.watcher?.removeAllListeners("put");
    handle.watcher?.removeAllListeners("delete");
    handle.watcher?.cancel().catch((err: unknown) => this.log.debug({ err }, `${this.what}: watch cancel failed`));
  }

  private decode(value: Uint8Array, what: string, fallbackName?: string): T | undefined {
    try {
      const entry = fromBinary(this.spec.schema, value);
      if (fallbackName !== undefined && entry.name === "") entry.name = fallbackName;
      return entry;
    } catch (err) {
      this.log.warn({ err, key: what }, `${this.what}: skipping undecodable value`);
      return undefined;
    }
  }

  /** Best-effort lease revoke: a lease left behind expires on its own at its TTL. */
  private revoke(lease: string): void {
    if (lease === "0" || lease === "") return;
    this.client.leaseClient.leaseRevoke({ ID: lease }).catch((err: unknown) => {
      this.log.debug({ err, lease }, `${this.what}: lease revoke failed`);
    });
  }

  private key(name: string): Buffer {
    return Buffer.from(`${this.keyPrefix}${name}`);
  }

  private checkOpen(): void {
    if (this.closed) fail(Code.Unavailable, `${this.what}: store closed`);
  }

  /** Runs an etcd call, turning transport failures into `Unavailable` with the operation named. */
  private async call<R>(op: string, fn: () => Promise<R>): Promise<R> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof StatusError) throw err;
      throw new StatusError(Code.Unavailable, `${this.what}: ${op}: ${(err as Error).message}`, { cause: err });
    }
  }
}

/** The end of etcd's prefix range: the prefix with its last byte incremented. */
function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
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
