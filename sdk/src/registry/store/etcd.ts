/**
 * The etcd registry store: one key per entry (`<prefix><kind>/<name>`, value = the protobuf binary), a lease per
 * expiring registration so etcd itself deletes it at its expiration (even when no registry replica is alive), and
 * `mod_revision` compare-and-swap through transactions so two registry replicas never lose an update. Find is served
 * from a watch-fed mirror of the prefix (loaded at one revision, then fed by a watch from the next revision, so
 * nothing is lost or repeated), indexed like the memory store: Find by label does not range over every key.
 */
import { clone, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { compare, type EtcdClientOptions, EtcdMirror, EtcdStoreBase, type IRequestOp } from "@nsm-ts/base/etcd";
import type { Logger } from "@nsm-ts/base/log";
import { Code, fail, StatusError } from "@nsm-ts/base/status";
import type { RegistryEntry } from "../core/index.js";
import { EntryIndex } from "./entry-index.js";
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
};

/** Entries read per range request: keeps each response far below gRPC's 4 MiB default message limit. */
const PAGE_SIZE = 1000;

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
  private mirror: Promise<Mirror<T>> | undefined;

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
    this.etcd = new EtcdStoreBase({
      ...(opts.client === undefined ? { endpoints: opts.endpoints } : { client: opts.client }),
      prefix: `${opts.prefix ?? DEFAULT_ETCD_PREFIX}${spec.kind}/`,
      describe: (op) => `${what}: ${op}`,
      closedMessage: `${what}: store closed`,
      log: opts.log,
    });
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
    const lease = opts.expiresAtMs === undefined ? "0" : await this.etcd.grantLease(opts.expiresAtMs, this.clock.now());
    const putOp: IRequestOp = {
      request_put: { key, value: Buffer.from(toBinary(this.spec.schema, entry)), lease, prev_kv: true },
    };
    const res = await this.etcd
      .call("put", () =>
        this.etcd.client.kv.txn({
          compare: opts.expectRevision === undefined ? [] : [compare.modRevision(key, opts.expectRevision)],
          success: [putOp],
          failure: [{ request_range: { key, keys_only: true } }],
        }),
      )
      .catch((err: unknown) => {
        this.etcd.revokeLease(lease);
        throw err;
      });
    if (!res.succeeded) {
      this.etcd.revokeLease(lease);
      failStaleRevision(this.what, name, res.responses[0]?.response_range?.kvs[0]?.mod_revision ?? "0", opts.expectRevision);
    }
    // The previous registration's lease now holds no key; revoke it so it does not linger until its TTL.
    const prevLease = res.responses[0]?.response_put?.prev_kv?.lease;
    if (prevLease !== undefined && prevLease !== lease) this.etcd.revokeLease(prevLease);
    await this.mirrored(res.header.revision);
    return { revision: res.header.revision };
  }

  async delete(name: string): Promise<T | undefined> {
    const res = await this.etcd.call("delete", () => this.etcd.client.kv.deleteRange({ key: this.key(name), prev_kv: true }));
    const prev = res.prev_kvs[0];
    if (prev === undefined) return undefined;
    this.etcd.revokeLease(prev.lease);
    await this.mirrored(res.header.revision);
    return this.decode(prev.value, name);
  }

  find(template: T, opts: StoreFindOptions): AsyncIterable<StoreEvent<T>> {
    return this.findGen(clone(this.spec.schema, template), opts);
  }

  async close(): Promise<void> {
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
    const m: Mirror<T> = {
      index,
      feed: new EtcdMirror(this.etcd, this.etcd.prefix, {
        load: (kv) => {
          const entry = this.decode(kv.value, kv.key.toString());
          if (entry !== undefined) index.set(entry, kv.mod_revision, false);
        },
        put: (kv) => {
          const entry = this.decode(kv.value, kv.key.toString());
          if (entry !== undefined) index.set(entry, kv.mod_revision);
        },
        // A lease expiry arrives here like an unregister: watchers see it as deleted=true.
        delete: (kv) => index.delete(kv.key.toString().slice(this.etcd.prefix.length), kv.mod_revision),
        error: (err) => {
          // Unrecoverable (e.g. the revision was compacted away): end the watches; the next Find reloads.
          this.etcd.log.warn({ err }, `${this.what}: watch failed; Find will reload`);
          if (this.mirror !== undefined) this.mirror = undefined;
          void this.stopMirror(m, new StatusError(Code.Unavailable, `${this.what}: watch failed: ${err.message}`, { cause: err }));
        },
      }),
    };
    await m.feed.start(PAGE_SIZE);
    return m;
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

  private decode(value: Uint8Array, what: string): T | undefined {
    try {
      return fromBinary(this.spec.schema, value);
    } catch (err) {
      this.etcd.log.warn({ err, key: what }, `${this.what}: skipping undecodable value`);
      return undefined;
    }
  }

  private key(name: string): Buffer {
    return Buffer.from(`${this.etcd.prefix}${name}`);
  }
}
