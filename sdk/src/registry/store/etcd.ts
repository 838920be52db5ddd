/**
 * The etcd registry store: one key per entry (`<prefix><kind>/<name>`, value = the protobuf binary), expiring
 * registrations on a lease shared per expiry bucket (etcd-leases.ts) so etcd itself deletes them even when no registry
 * replica is alive, while a running store deletes each at its exact expiry on one coalesced timer, and
 * `mod_revision` compare-and-swap through transactions so two registry replicas never lose an update. Find is served
 * from a watch-fed mirror of the prefix (loaded at one revision, then fed by a watch from the next revision, so
 * nothing is lost or repeated), indexed like the memory store: Find by label does not range over every key.
 */
import { clone, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Clock, DeadlineQueue, realClock } from "@nsm-ts/base/clock";
import { compare, type EtcdClientOptions, EtcdMirror, EtcdStoreBase, type IKeyValue, type IRequestOp } from "@nsm-ts/base/etcd";
import type { Logger } from "@nsm-ts/base/log";
import { Code, fail, StatusError } from "@nsm-ts/base/status";
import type { RegistryEntry } from "../core/index.js";
import { EntryIndex, type Loader } from "./entry-index.js";
import { DEFAULT_LEASE_BUCKET_MS, isLeaseGone, LeaseBuckets } from "./etcd-leases.js";
import { entryName, failStaleRevision, type KindSpec, kindSpec } from "./kind.js";
import {
  DEFAULT_WATCH_BUFFER,
  type RegistryEntryOf,
  type RegistryKind,
  type RegistryStore,
  type StoreEvent,
  type StoreFindOptions,
  type StorePutOptions,
  type VersionedEntry,
} from "./types.js";

/** Default key prefix of the etcd store. */
export const DEFAULT_ETCD_PREFIX = "/nsm-ts/registry/";

/** Options of `createEtcdStore`: an existing client (kept open on close) or endpoints (a client the store owns). */
export type EtcdStoreOptions = EtcdClientOptions & {
  /** Key prefix; default `/nsm-ts/registry/`. Entries live under `<prefix><kind>/<name>`. */
  prefix?: string;
  /** Time source used to turn `expiresAtMs` into a lease TTL; default the real clock. */
  clock?: Clock;
  /** Live events buffered per watcher before it is cut off with `ResourceExhausted`; default `DEFAULT_WATCH_BUFFER`. */
  watchBuffer?: number;
  /**
   * How long a write waits for its own change to reach the Find mirror before returning anyway; default 5000 ms.
   * The wait gives read-your-writes to Find; the write itself is already durable in etcd.
   */
  mirrorWaitMs?: number;
  /** Where anomalies (undecodable values, lease revoke failures, broken watches) are logged; default silent. */
  log?: Logger;
  /**
   * Width of the expiry buckets whose registrations share one etcd lease; default 5000 ms. Wider means fewer lease
   * grants, and a later deletion by etcd alone (at most this + 1 s after the expiry) when no store is running.
   */
  leaseBucketMs?: number;
  /**
   * Start loading the Find mirror when the store is created instead of on the first Find; default false. A
   * registry sets it so its first Find after a restart does not pay the whole load.
   */
  loadAtStart?: boolean;
  /** Entries per range request while loading the mirror; default 1000. */
  loadPageSize?: number;
};

/** Entries read per range request by default: keeps each response far below gRPC's 4 MiB default message limit. */
const PAGE_SIZE = 1000;

/** Entries decoded between two event-loop turns while loading the mirror. */
const DECODE_SLICE = 250;

/** Creates an etcd-backed store of network services (`"ns"`) or endpoints (`"nse"`). */
export function createEtcdStore<K extends RegistryKind>(kind: K, opts: EtcdStoreOptions): RegistryStore<RegistryEntryOf[K]> {
  return new EtcdStore(kindSpec(kind), opts);
}

/** The local, watch-fed copy of the prefix that Find reads. */
interface Mirror<T extends RegistryEntry> {
  index: EntryIndex<T>;
  feed: EtcdMirror;
}

class EtcdStore<T extends RegistryEntry> implements RegistryStore<T> {
  readonly kind: RegistryKind;
  private readonly what: string;
  private readonly etcd: EtcdStoreBase;
  private readonly clock: Clock;
  private readonly watchBuffer: number;
  private readonly mirrorWaitMs: number;
  private readonly pageSize: number;
  private mirror: Promise<Mirror<T>> | undefined;
  /** Shared leases by expiry bucket. */
  readonly leases: LeaseBuckets;
  /** Exact expiries on one timer; `expiring` holds the revision each was set for (a later write cancels it). */
  private readonly expiry: DeadlineQueue<string>;
  private readonly expiring = new Map<string, bigint>();

  constructor(
    private readonly spec: KindSpec<T>,
    opts: EtcdStoreOptions,
  ) {
    this.kind = spec.kind;
    const what = `registry store (etcd ${spec.kind})`;
    this.what = what;
    if (opts.client === undefined && opts.endpoints.length === 0) fail(Code.InvalidArgument, `${what}: endpoints is empty`);
    this.clock = opts.clock ?? realClock;
    this.watchBuffer = opts.watchBuffer ?? DEFAULT_WATCH_BUFFER;
    if (!(this.watchBuffer >= 1)) fail(Code.InvalidArgument, `${what}: watchBuffer must be at least 1`);
    this.mirrorWaitMs = opts.mirrorWaitMs ?? 5000;
    this.pageSize = opts.loadPageSize ?? PAGE_SIZE;
    if (!(this.pageSize >= 1)) fail(Code.InvalidArgument, `${what}: loadPageSize must be at least 1`);
    const bucketMs = opts.leaseBucketMs ?? DEFAULT_LEASE_BUCKET_MS;
    if (!(bucketMs >= 1)) fail(Code.InvalidArgument, `${what}: leaseBucketMs must be at least 1`);
    this.etcd = new EtcdStoreBase({
      ...(opts.client === undefined ? { endpoints: opts.endpoints } : { client: opts.client }),
      prefix: `${opts.prefix ?? DEFAULT_ETCD_PREFIX}${spec.kind}/`,
      describe: (op) => `${what}: ${op}`,
      closedMessage: `${what}: store closed`,
      log: opts.log,
    });
    this.leases = new LeaseBuckets(this.etcd, bucketMs, this.clock);
    this.expiry = new DeadlineQueue(this.clock, (name) => void this.expire(name));
    if (opts.loadAtStart) {
      this.ensureMirror().catch((err: unknown) => this.etcd.log.warn({ err }, `${what}: loading the Find mirror failed; Find will retry`));
    }
  }

  async get(name: string): Promise<T | undefined> {
    return (await this.getVersioned(name))?.entry;
  }

  /** Reads etcd itself (not the mirror), so the revision is current for a compare-and-swap. */
  async getVersioned(name: string): Promise<VersionedEntry<T> | undefined> {
    const res = await this.etcd.call("get", () => this.etcd.client.kv.range({ key: this.key(name) }));
    const kv = res.kvs[0];
    if (kv === undefined) return undefined;
    const entry = this.decode(kv.value, name);
    return entry === undefined ? undefined : { entry, revision: kv.mod_revision };
  }

  async put(entry: T, opts: StorePutOptions = {}): Promise<{ revision: string }> {
    this.etcd.checkOpen();
    const name = entryName(this.what, entry);
    const key = this.key(name);
    const value = Buffer.from(toBinary(this.spec.schema, entry));
    const txn = async (lease: string) =>
      this.etcd.call("put", () =>
        this.etcd.client.kv.txn({
          compare: opts.expectRevision === undefined ? [] : [compare.modRevision(key, opts.expectRevision)],
          success: [{ request_put: { key, value, lease } } satisfies IRequestOp],
          failure: [{ request_range: { key, keys_only: true } }],
        }),
      );
    // Leases are shared, so nothing is revoked here: a lease with no key left simply runs out at its bucket's end.
    const at = opts.expiresAtMs;
    let res: Awaited<ReturnType<typeof txn>>;
    if (at === undefined) res = await txn("0");
    else {
      const lease = await this.leases.lease(at);
      res = await txn(lease).catch(async (err: unknown) => {
        if (!isLeaseGone(err)) throw err;
        await this.leases.forget(lease);
        return txn(await this.leases.lease(at));
      });
    }
    if (!res.succeeded) {
      failStaleRevision(this.what, name, res.responses[0]?.response_range?.kvs[0]?.mod_revision ?? "0", opts.expectRevision);
    }
    this.schedule(name, res.header.revision, at);
    await this.mirrored(res.header.revision);
    return { revision: res.header.revision };
  }

  async delete(name: string): Promise<T | undefined> {
    const res = await this.etcd.call("delete", () => this.etcd.client.kv.deleteRange({ key: this.key(name), prev_kv: true }));
    const prev = res.prev_kvs[0];
    this.unschedule(name, BigInt(res.header.revision));
    if (prev === undefined) return undefined;
    await this.mirrored(res.header.revision);
    return this.decode(prev.value, name);
  }

  find(template: T, opts: StoreFindOptions): AsyncIterable<StoreEvent<T>> {
    return this.findGen(clone(this.spec.schema, template), opts);
  }

  async close(): Promise<void> {
    this.expiry.close();
    this.expiring.clear();
    await this.etcd.close(async () => {
      const m = await this.mirror?.catch(() => undefined);
      this.mirror = undefined;
      if (m !== undefined) await this.stopMirror(m, new StatusError(Code.Unavailable, `${this.what}: store closed`));
    });
  }

  private async *findGen(template: T, opts: StoreFindOptions): AsyncGenerator<StoreEvent<T>> {
    this.etcd.checkOpen();
    const m = await this.ensureMirror();
    yield* m.index.find(template, opts);
  }

  private ensureMirror(): Promise<Mirror<T>> {
    this.mirror ??= this.loadMirror().catch((err: unknown) => {
      this.mirror = undefined;
      throw err;
    });
    return this.mirror;
  }

  private async loadMirror(): Promise<Mirror<T>> {
    const index = new EntryIndex(this.spec, this.watchBuffer, this.what);
    const loader = index.startLoad();
    const m: Mirror<T> = {
      index,
      feed: new EtcdMirror(this.etcd, this.etcd.prefix, {
        load: (kv) => void this.loadPage(loader, [kv]),
        loadPage: (kvs) => this.loadPage(loader, kvs),
        loaded: () => loader.finish(),
        put: (kv) => {
          const entry = this.decode(kv.value, kv.key);
          if (entry === undefined) return;
          index.set(entry, kv.mod_revision);
          this.adopt(entry, kv.mod_revision);
        },
        // A lease expiry arrives here like an unregister: watchers see it as deleted=true.
        delete: (kv) => {
          const name = kv.key.toString().slice(this.etcd.prefix.length);
          this.unschedule(name, BigInt(kv.mod_revision));
          index.delete(name, kv.mod_revision);
        },
        error: (err) => {
          // Unrecoverable (e.g. the revision was compacted away): end the watches; the next Find reloads.
          this.etcd.log.warn({ err }, `${this.what}: watch failed; Find will reload`);
          if (this.mirror !== undefined) this.mirror = undefined;
          void this.stopMirror(m, new StatusError(Code.Unavailable, `${this.what}: watch failed: ${err.message}`, { cause: err }));
        },
      }),
    };
    try {
      await m.feed.start(this.pageSize);
    } catch (err) {
      loader.abort();
      throw err;
    }
    return m;
  }

  /**
   * Decodes one loaded page in slices of `DECODE_SLICE` entries with an event-loop turn between them (so a large load
   * never holds up other calls for long), adds each entry to the load and takes over the expiry it carries.
   */
  private async loadPage(loader: Loader<T>, kvs: readonly IKeyValue[]): Promise<void> {
    for (let i = 0; i < kvs.length; i += DECODE_SLICE) {
      if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      for (let j = i; j < Math.min(kvs.length, i + DECODE_SLICE); j++) {
        const kv = kvs[j] as IKeyValue;
        const entry = this.decode(kv.value, kv.key);
        if (entry === undefined) continue;
        loader.add(entry, kv.mod_revision, kv.value);
        this.adopt(entry, kv.mod_revision);
      }
    }
  }

  /**
   * An entry seen on the mirror (written by any replica, or before a restart) that carries its own expiry gets its
   * exact deletion here too; one written without (an update that dropped it) loses an older schedule.
   */
  private adopt(entry: T, revision: string): void {
    const at = this.spec.expiresAtMs(entry);
    if (at !== undefined) this.schedule(entry.name, revision, at);
    else this.unschedule(entry.name, BigInt(revision));
  }

  /** Schedules the exact expiry of `name` as written at `revision`, unless a later write is already known. */
  private schedule(name: string, revision: string, at: number | undefined): void {
    const r = BigInt(revision);
    const have = this.expiring.get(name);
    if (have !== undefined && have > r) return;
    if (at === undefined) {
      this.unschedule(name, r);
      return;
    }
    this.expiring.set(name, r);
    this.expiry.set(name, at);
  }

  /** Drops the schedule of `name` when it was set for a revision before `revision`. */
  private unschedule(name: string, revision: bigint): void {
    const have = this.expiring.get(name);
    if (have === undefined || have >= revision) return;
    this.expiring.delete(name);
    this.expiry.delete(name);
  }

  /**
   * Deletes `name` at its exact expiry if it is still at the revision the expiry was set for (a refresh in between,
   * by any replica, wins). Every replica with the entry scheduled tries; the compare lets one succeed.
   */
  private async expire(name: string): Promise<void> {
    const revision = this.expiring.get(name);
    this.expiring.delete(name);
    if (revision === undefined || this.etcd.closed) return;
    const key = this.key(name);
    await this.etcd
      .call("expire", () =>
        this.etcd.client.kv.txn({
          compare: [compare.modRevision(key, revision.toString())],
          success: [{ request_delete_range: { key } }],
          failure: [],
        }),
      )
      .catch((err: unknown) => this.etcd.log.debug({ err, name }, `${this.what}: expiry delete failed; the lease removes it`));
  }

  /** Waits (bounded) until the mirror, if one is running, has applied `revision`: Find then sees this write. */
  private async mirrored(revision: string): Promise<void> {
    const m = await this.mirror?.catch(() => undefined);
    if (m !== undefined && !(await m.feed.waitFor(revision, this.mirrorWaitMs, this.clock))) {
      this.etcd.log.warn({ revision }, `${this.what}: write not seen on the watch in time; Find may lag`);
    }
  }

  private async stopMirror(m: Mirror<T>, err: StatusError): Promise<void> {
    m.index.failWatchers(err);
    await m.feed.stop();
  }

  /** `what`: the entry's name or key (a key is turned into text only for the log line). */
  private decode(value: Uint8Array, what: string | Buffer): T | undefined {
    try {
      return fromBinary(this.spec.schema, value);
    } catch (err) {
      this.etcd.log.warn({ err, key: what.toString() }, `${this.what}: skipping undecodable value`);
      return undefined;
    }
  }

  private key(name: string): Buffer {
    return Buffer.from(`${this.etcd.prefix}${name}`);
  }
}
