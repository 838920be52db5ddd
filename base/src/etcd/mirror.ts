/**
 * A local copy of a key prefix that a watch keeps current: loaded page by page at one revision, then fed by a
 * watch from the next revision, so no change falls between the load and the watch and none arrives twice.
 * Writers can wait (bounded) until the mirror has applied their write, which gives their readers
 * read-your-writes.
 */
import type { IKeyValue } from "etcd3";
import type { Clock } from "../clock/index.js";
import { scanPrefix } from "./scan.js";
import type { EtcdStoreBase, EtcdWatch } from "./store.js";

/** Where a mirror's keys go: each loaded key, then every change; `error` means the watch broke for good. */
export interface MirrorFeed {
  load(kv: IKeyValue): void;
  /**
   * When given, takes each loaded page whole instead of `load` per key (e.g. to index a page in one transaction);
   * it may return a promise (to decode in slices), which the load waits for before the next page.
   */
  loadPage?(kvs: readonly IKeyValue[]): void | Promise<void>;
  /**
   * When given, called once after the last loaded key, before the watch starts (e.g. to publish the load); the
   * watch waits for a promise it returns.
   */
  loaded?(): void | Promise<void>;
  put(kv: IKeyValue): void;
  delete(kv: IKeyValue): void;
  error(err: Error): void;
}

/** A watch-fed copy of one prefix (the store keeps the copy itself; this keeps it current). */
export class EtcdMirror {
  private appliedRevision = 0n;
  private watch: EtcdWatch | undefined;
  private waits: Array<{ revision: bigint; done: () => void }> = [];

  constructor(
    private readonly store: EtcdStoreBase,
    private readonly prefix: string,
    private readonly feed: MirrorFeed,
  ) {}

  /** Highest etcd revision the feed has been given. */
  get applied(): bigint {
    return this.appliedRevision;
  }

  /**
   * Loads the prefix (`pageSize` keys per request, a few requests in flight: `scanPrefix`) and starts the watch.
   * Pages arrive in no particular order, all at one revision; etcd's time and ours overlap, and the event loop gets
   * a turn after every page: a large load never holds up the process's other calls for longer than one page takes
   * to decode.
   */
  async start(pageSize: number): Promise<void> {
    let revision: string | undefined;
    const pages = scanPrefix(this.store, "load", this.prefix, { pageSize });
    try {
      for (;;) {
        const r = await pages.next();
        if (r.done) break;
        const page = r.value;
        revision ??= page.revision;
        if (this.feed.loadPage) await this.feed.loadPage(page.kvs);
        else for (const kv of page.kvs) this.feed.load(kv);
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      await pages.return(undefined);
    }
    await this.feed.loaded?.();
    this.appliedRevision = BigInt(revision ?? "0");
    // No previous values on the watch: a delete's previous value is the mirror's own copy.
    this.watch = await this.store.watch(
      this.prefix,
      {
        put: (kv) => {
          this.feed.put(kv);
          this.advance(kv.mod_revision);
        },
        delete: (kv) => {
          this.feed.delete(kv);
          this.advance(kv.mod_revision);
        },
        error: (err) => this.feed.error(err),
      },
      { startRevision: (this.appliedRevision + 1n).toString(), op: "watch failed" },
    );
  }

  /**
   * Resolves true once the mirror has applied `revision` (or has stopped: nothing is left to wait for), false
   * after `timeoutMs`: the write is durable either way, only the mirror's readers may lag.
   */
  waitFor(revision: string, timeoutMs: number, clock: Clock): Promise<boolean> {
    const r = BigInt(revision);
    if (this.appliedRevision >= r) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = clock.setTimer(timeoutMs, () => {
        this.waits = this.waits.filter((w) => w !== wait);
        resolve(false);
      });
      const wait = {
        revision: r,
        done: () => {
          timer.stop();
          resolve(true);
        },
      };
      this.waits.push(wait);
    });
  }

  /** Releases every waiting writer and stops the watch. */
  async stop(): Promise<void> {
    for (const w of this.waits.splice(0)) w.done();
    const w = this.watch;
    this.watch = undefined;
    await w?.stop();
  }

  private advance(revision: string): void {
    const r = BigInt(revision);
    if (r > this.appliedRevision) this.appliedRevision = r;
    if (this.waits.length === 0) return;
    const due = this.waits.filter((w) => w.revision <= this.appliedRevision);
    this.waits = this.waits.filter((w) => w.revision > this.appliedRevision);
    for (const w of due) w.done();
  }
}
