/**
 * The etcd registry store: one key per entry (`<prefix><kind>/<name>`, value = the protobuf binary), a lease per
 * expiring registration so etcd itself deletes it at its expiration (even when no registry replica is alive), and
 * `mod_revision` compare-and-swap through transactions so two registry replicas never lose an update. Find is served
 * from a watch-fed mirror of the prefix (loaded at one revision, then fed by a watch from the next revision, so
 * nothing is lost or repeated), indexed like the memory store: Find by label does not range over every key.
 */
import { clone, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import type { Logger } from "@nsm-ts/base/log";
import { silentLogger } from "@nsm-ts/base/log";
import { Code, fail, StatusError } from "@nsm-ts/base/status";
import { Etcd3, type IKeyValue, type IRequestOp, type ITxnResponse, type Watcher } from "etcd3";
import type { RegistryEntry } from "../core/index.js";
import { EntryIndex } from "./entry-index.js";
import { type KindSpec, kindSpec } from "./kind.js";
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
export type EtcdStoreOptions = ({ client: Etcd3; endpoints?: undefined } | { endpoints: string[]; client?: undefined }) & {
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
  /** Highest etcd revision applied to `index`. */
  applied: bigint;
  watcher: Watcher | undefined;
  waits: Array<{ revision: bigint; done: () => void }>;
}

class EtcdStore<T extends RegistryEntry> implements RegistryStore<T> {
  readonly kind: RegistryKind;
  private readonly what: string;
  private readonly client: Etcd3;
  private readonly ownsClient: boolean;
  private readonly keyPrefix: string;
  private readonly clock: Clock;
  private readonly watchBuffer: number;
  private readonly mirrorWaitMs: number;
  private readonly log: Logger;
  private mirror: Promise<Mirror<T>> | undefined;
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
    this.mirrorWaitMs = opts.mirrorWaitMs ?? 5000;
    this.log = opts.log ?? silentLogger;
  }

  async get(name: string): Promise<T | undefined> {
    return (await this.getVersioned(name))?.entry;
  }

  /** Reads etcd itself (not the mirror), so the revision is current for a compare-and-swap. */
  async getVersioned(name: string): Promise<VersionedEntry<T> | undefined> {
    this.checkOpen();
    const res = await this.call("get", () => this.client.kv.range({ key: this.key(name) }));
    const kv = res.kvs[0];
    if (kv === undefined) return undefined;
    const entry = this.decode(kv.value, name);
    return entry === undefined ? undefined : { entry, revision: kv.mod_revision };
  }

  async put(entry: T, opts: StorePutOptions = {}): Promise<{ revision: string }> {
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
    let res: ITxnResponse;
    try {
      res = await this.call("put", () =>
        this.client.kv.txn({
          compare: opts.expectRevision === undefined ? [] : [{ key, target: "Mod", result: "Equal", mod_revision: opts.expectRevision }],
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
    await this.mirrored(res.header.revision);
    return { revision: res.header.revision };
  }

  async delete(name: string): Promise<T | undefined> {
    this.checkOpen();
    const res = await this.call("delete", () => this.client.kv.deleteRange({ key: this.key(name), prev_kv: true }));
    const prev = res.prev_kvs[0];
    if (prev === undefined) return undefined;
    this.revoke(prev.lease);
    await this.mirrored(res.header.revision);
    return this.decode(prev.value, name);
  }

  find(template: T, opts: StoreFindOptions): AsyncIterable<StoreEvent<T>> {
    return this.findGen(clone(this.spec.schema, template), opts);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const m = await this.mirror?.catch(() => undefined);
    this.mirror = undefined;
    if (m !== undefined) await this.stopMirror(m, new StatusError(Code.Unavailable, `${this.what}: store closed`));
    if (this.ownsClient) this.client.close();
  }

  private async *findGen(template: T, opts: StoreFindOptions): AsyncGenerator<StoreEvent<T>> {
    this.checkOpen();
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

  /** Loads the prefix at one revision (paged), then watches from the next revision so no change falls between. */
  private async loadMirror(): Promise<Mirror<T>> {
    const index = new EntryIndex(this.spec, this.watchBuffer, this.what);
    const end = prefixEnd(this.keyPrefix);
    let revision: string | undefined;
    let from = Buffer.from(this.keyPrefix);
    for (;;) {
      const res = await this.call("load", () =>
        this.client.kv.range({ key: from, range_end: end, limit: PAGE_SIZE, ...(revision === undefined ? {} : { revision }) }),
      );
      revision ??= res.header.revision;
      for (const kv of res.kvs) {
        const entry = this.decode(kv.value, kv.key.toString());
        if (entry !== undefined) index.set(entry, kv.mod_revision, false);
      }
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || last === undefined) break;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
    const m: Mirror<T> = { index, applied: BigInt(revision), watcher: undefined, waits: [] };
    // No withPreviousKV: a delete's previous value is the mirror's own copy, so the watch carries only new values.
    const builder = this.client
      .watch()
      .startRevision((m.applied + 1n).toString())
      .prefix(this.keyPrefix);
    try {
      m.watcher = await builder.create();
    } catch (err) {
      throw new StatusError(Code.Unavailable, `${this.what}: watch failed: ${String(err)}`, { cause: err });
    }
    m.watcher.on("put", (kv: IKeyValue) => {
      const entry = this.decode(kv.value, kv.key.toString());
      if (entry !== undefined) m.index.set(entry, kv.mod_revision);
      this.advance(m, kv.mod_revision);
    });
    m.watcher.on("delete", (kv: IKeyValue) => {
      // A lease expiry arrives here like an unregister: watchers see it as deleted=true.
      m.index.delete(kv.key.toString().slice(this.keyPrefix.length), kv.mod_revision);
      this.advance(m, kv.mod_revision);
    });
    m.watcher.on("error", (err: Error) => {
      // Unrecoverable (e.g. the revision was compacted away): end the watches; the next Find reloads.
      this.log.warn({ err }, `${this.what}: watch failed; Find will reload`);
      if (this.mirror !== undefined) this.mirror = undefined;
      void this.stopMirror(m, new StatusError(Code.Unavailable, `${this.what}: watch failed: ${err.message}`, { cause: err }));
    });
    if (this.closed) {
      await this.stopMirror(m, new StatusError(Code.Unavailable, `${this.what}: store closed`));
      fail(Code.Unavailable, `${this.what}: store closed`);
    }
    return m;
  }

  private advance(m: Mirror<T>, revision: string): void {
    const r = BigInt(revision);
    if (r > m.applied) m.applied = r;
    if (m.waits.length === 0) return;
    const due = m.waits.filter((w) => w.revision <= m.applied);
    m.waits = m.waits.filter((w) => w.revision > m.applied);
    for (const w of due) w.done();
  }

  /** Waits (bounded) until the mirror, if one is running, has applied `revision`: Find then sees this write. */
  private async mirrored(revision: string): Promise<void> {
    const m = await this.mirror?.catch(() => undefined);
    if (m === undefined || m.applied >= BigInt(revision)) return;
    await new Promise<void>((resolve) => {
      const timer = this.clock.setTimer(this.mirrorWaitMs, () => {
        m.waits = m.waits.filter((w) => w !== wait);
        this.log.warn({ revision }, `${this.what}: write not seen on the watch in time; Find may lag`);
        resolve();
      });
      const wait = {
        revision: BigInt(revision),
        done: () => {
          timer.stop();
          resolve();
        },
      };
      m.waits.push(wait);
    });
  }

  private async stopMirror(m: Mirror<T>, err: StatusError): Promise<void> {
    m.index.failWatchers(err);
    for (const w of m.waits.splice(0)) w.done();
    const w = m.watcher;
    m.watcher = undefined;
    if (w !== undefined) {
      w.removeAllListeners("put");
      w.removeAllListeners("delete");
      await w.cancel().catch((e: unknown) => this.log.debug({ err: e }, `${this.what}: watch cancel failed`));
    }
  }

  private decode(value: Uint8Array, what: string): T | undefined {
    try {
      return fromBinary(this.spec.schema, value);
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
