/**
 * The plumbing every etcd-backed store shares: the client (one it was given, kept open on close, or one it
 * owns), the key prefix, transport failures turned into `Unavailable`, paged prefix reads, watches stopped on
 * close, and leases.
 */
import type { Etcd3, IKeyValue, IOptions, Watcher } from "etcd3";
import { lazyRequire } from "../lazy.js";
import { type Logger, silentLogger } from "../log/index.js";
import { Code, fail, StatusError } from "../status/index.js";
import { keyAfter } from "./keys.js";

const etcd3 = lazyRequire<typeof import("etcd3")>("etcd3");

/** A new etcd3 client (the package is loaded on the first call; see lazy.ts). */
export function newEtcdClient(options: IOptions): Etcd3 {
  return new (etcd3().Etcd3)(options);
}

/** How a store reaches etcd: an existing client (kept open on close) or endpoints (a client the store owns). */
export type EtcdClientOptions = { client: Etcd3; endpoints?: undefined } | { endpoints: string[]; client?: undefined };

/** Options of `EtcdStoreBase`. */
export type EtcdStoreBaseOptions = EtcdClientOptions & {
  /** Key prefix every key of the store lives under. */
  prefix: string;
  /** The text of a failed operation's error, before the cause: e.g. `registry store (etcd ns): put`. */
  describe: (op: string) => string;
  /** The text of the `Unavailable` error of calls after close. */
  closedMessage: string;
  /** Where broken watches and failed cleanups are logged; default silent. */
  log?: Logger | undefined;
};

/** What a watch reports; `error` means the watch is broken (etcd3 retries transient faults by itself). */
export interface WatchHandlers {
  put(kv: IKeyValue): void;
  /** `prev`: the key's last value, when the watch asked for it (`prevKv`) and etcd still has it. */
  delete(kv: IKeyValue, prev?: IKeyValue): void;
  error(err: Error): void;
}

/** A running watch. */
export interface EtcdWatch {
  /** Cancels the watch; its handlers are called no more. Safe to call twice. */
  stop(): Promise<void>;
}

/** One page of a range read. */
export interface RangePage {
  readonly kvs: readonly IKeyValue[];
  /** The store revision the page was read at. */
  readonly revision: string;
}

/** Client, prefix and lifecycle of one etcd-backed store. */
export class EtcdStoreBase {
  readonly client: Etcd3;
  readonly prefix: string;
  readonly log: Logger;
  private readonly owns: boolean;
  private readonly describe: (op: string) => string;
  private readonly closedMessage: string;
  private readonly watches = new Map<Watcher, EtcdWatch>();
  /** Watches etcd cancelled itself: asking to cancel them again would wait for an answer that never comes. */
  private readonly cancelledByServer = new WeakSet<Watcher>();
  private isClosed = false;

  constructor(opts: EtcdStoreBaseOptions) {
    this.client = opts.client ?? newEtcdClient({ hosts: opts.endpoints ?? [] });
    this.owns = opts.client === undefined;
    this.prefix = opts.prefix;
    this.describe = opts.describe;
    this.closedMessage = opts.closedMessage;
    this.log = opts.log ?? silentLogger;
  }

  /** True once `close` has begun. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Fails with `Unavailable` once the store is closed. */
  checkOpen(): void {
    if (this.isClosed) fail(Code.Unavailable, this.closedMessage);
  }

  /** Runs an etcd call on the open store, turning transport failures into `Unavailable` with the operation named. */
  async call<R>(op: string, fn: () => Promise<R>): Promise<R> {
    this.checkOpen();
    try {
      return await fn();
    } catch (err) {
      if (err instanceof StatusError) throw err;
      throw new StatusError(Code.Unavailable, `${this.describe(op)}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * The keys in [`from`, `end`), `pageSize` per request. With `oneRevision` every page is read at the first
   * page's revision, so the pages together are one snapshot. The caller may stop early.
   */
  async *range(
    op: string,
    from: Buffer,
    end: Buffer,
    opts: { pageSize: number; oneRevision?: boolean },
  ): AsyncGenerator<RangePage, void, undefined> {
    let revision: string | undefined;
    for (let key = from; ; ) {
      const res = await this.call(op, () =>
        this.client.kv.range({ key, range_end: end, limit: opts.pageSize, ...(revision === undefined ? {} : { revision }) }),
      );
      if (opts.oneRevision) revision ??= res.header.revision;
      yield { kvs: res.kvs, revision: revision ?? res.header.revision };
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || last === undefined) return;
      key = keyAfter(last.key);
    }
  }

  /**
   * Watches every key under `prefix` (from `startRevision` when given, else from now; with `prevKv` deletes carry
   * the last value) until stopped or the
   * store closes. A watch that opens after `close` began is cancelled and fails with `Unavailable`.
   */
  async watch(prefix: string, on: WatchHandlers, opts: { startRevision?: string; op?: string; prevKv?: boolean } = {}): Promise<EtcdWatch> {
    const builder = this.client.watch().prefix(prefix);
    if (opts.startRevision !== undefined) builder.startRevision(opts.startRevision);
    if (opts.prevKv === true) builder.withPreviousKV();
    // Handlers go on before the watch connects: etcd may cancel a watch right after creating it (a compacted start
    // revision), and an error emitted before they were attached would be lost, leaving a dead watch.
    const w = builder.watcher();
    let connected = false;
    const ready = new Promise<void>((resolve, reject) => {
      w.once("connected", () => {
        connected = true;
        resolve();
      });
      w.on("error", (err: Error) => {
        // etcd3 emits an error when etcd cancelled the watch: it is gone on the server, so stop must not cancel it.
        this.cancelledByServer.add(w);
        if (connected) on.error(err);
        else reject(err);
      });
    });
    w.on("put", (kv: IKeyValue) => on.put(kv));
    w.on("delete", (kv: IKeyValue, prev?: IKeyValue) => on.delete(kv, prev));
    const handle: EtcdWatch = { stop: () => this.stopWatch(w) };
    this.watches.set(w, handle);
    try {
      await this.call(opts.op ?? "watch", () => ready);
    } catch (err) {
      await handle.stop();
      throw err;
    }
    if (this.isClosed) {
      await handle.stop();
      this.checkOpen();
    }
    return handle;
  }

  /** Grants a lease that outlives `expiresAtMs` by less than a second; resolves to its id. */
  async grantLease(expiresAtMs: number, nowMs: number): Promise<string> {
    // etcd counts TTLs in whole seconds; rounding up never expires a key before its time.
    const ttl = Math.max(1, Math.ceil((expiresAtMs - nowMs) / 1000));
    return (await this.call("lease grant", () => this.client.leaseClient.leaseGrant({ TTL: ttl }))).ID;
  }

  /** Best-effort lease revoke ("0" and "" are no lease): a lease left behind expires on its own at its TTL. */
  revokeLease(lease: string): void {
    if (lease === "0" || lease === "") return;
    this.client.leaseClient.leaseRevoke({ ID: lease }).catch((err: unknown) => {
      this.log.debug({ err, lease }, `${this.describe("lease revoke")} failed`);
    });
  }

  /**
   * Closes the store: later calls fail with `Unavailable`; `teardown` (the store's own cleanup) runs, then
   * every watch is stopped and an owned client closed. Safe to call twice.
   */
  async close(teardown?: () => Promise<void>): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    await teardown?.();
    await Promise.all([...this.watches.values()].map((h) => h.stop()));
    if (this.owns) this.client.close();
  }

  private async stopWatch(w: Watcher): Promise<void> {
    if (!this.watches.delete(w)) return;
    // A late error from a cancelled watch must neither crash the process nor reach the store.
    w.removeAllListeners();
    w.on("error", () => undefined);
    if (this.cancelledByServer.has(w)) return;
    await w.cancel().catch((err: unknown) => this.log.debug({ err }, `${this.describe("watch cancel")} failed`));
  }
}
