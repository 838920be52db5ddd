/**
 * A reconciler after Cilium's: it drives an outside system (kernel, remote registry, cluster) towards the
 * contents of a state table. Writers insert objects with a `pending` status; the reconciler applies them
 * through `ops`, stores `done` or `error` (with the message) back into the table, retries failures with
 * exponential backoff, re-applies everything periodically (refresh) and removes what the table does not
 * hold (prune).
 */
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { Code, StatusError } from "@nsm-ts/base/status";
import { type Change, ResyncRequiredError, type Table } from "../index.js";

/** Where an object stands: waiting for the reconciler, applied, or failed (and being retried). */
export type StatusKind = "pending" | "done" | "error";

/** The reconciliation status stored in each object. */
export interface Status {
  /** Current state. */
  readonly kind: StatusKind;
  /** Error message when `kind` is `error`. */
  readonly message?: string;
  /** For done/error: the table revision of the object version the result is about. */
  readonly revision?: number;
  /** Clock time of the last status change (ms). */
  readonly updatedAt?: number;
}

/** The status writers put on an object they insert or change, asking for it to be reconciled. */
export function pendingStatus(): Status {
  return { kind: "pending" };
}

/** How the reconciler acts on the outside system. Each call must be idempotent ("make it so"). */
export interface Operations<T> {
  /** Creates or updates the object outside. */
  update(obj: T, signal: AbortSignal): Promise<void>;
  /** Removes the object outside (it was deleted from the table). */
  delete(obj: T, signal: AbortSignal): Promise<void>;
  /** Removes everything outside that is not in `desired` (all objects in the table). */
  prune?(desired: readonly T[], signal: AbortSignal): Promise<void>;
}

/** Options of `createReconciler`. */
export interface ReconcilerOptions<T, I extends string> {
  /** The table holding the desired state. */
  readonly table: Table<T, I>;
  /** Reads the status stored in an object. */
  getStatus(obj: T): Status;
  /** Returns a copy of the object carrying `status` (objects in tables are immutable). */
  setStatus(obj: T, status: Status): T;
  /** Operations on the outside system. */
  readonly ops: Operations<T>;
  /** Stops the reconciler; nothing (no timer, no loop) is left behind once it aborts. */
  readonly signal: AbortSignal;
  /** Time source; default the real clock. */
  readonly clock?: Clock;
  /** Backoff per object: first retry after `minMs` (default 100), doubling up to `maxMs` (default 60 000). */
  readonly retry?: { readonly minMs?: number; readonly maxMs?: number };
  /** Re-apply every `done` object this often; default never. */
  readonly refreshIntervalMs?: number;
  /** Prune this often (and once when the table is first initialized); default only that first time. */
  readonly pruneIntervalMs?: number;
  /** Logger; default silent. */
  readonly log?: Logger;
}

/** A running reconciler. */
export interface Reconciler<T> {
  /**
   * Resolves when everything up to a table revision (a number) or the given objects (by primary key, as of
   * now) is applied: seen by the reconciler, with no update or delete outstanding or failing. Rejects when
   * `signal` or the reconciler stops first.
   */
  waitReconciled(target: number | readonly T[], signal?: AbortSignal): Promise<void>;
  /** Resolves once the reconciler has stopped after its signal aborted. */
  readonly stopped: Promise<void>;
}

interface Item<T> {
  kind: "update" | "delete";
  key: string;
  object: T;
  /** Revision of the table entry the item acts on (moves when the reconciler writes an error status). */
  revision: number;
  /** Revision of the change that asked for this work. */
  changeRevision: number;
  attempts: number;
  retryAt: number | undefined;
  /** Refreshes only block waiters once they fail. */
  blocking: boolean;
}

interface StatusWrite<T> {
  item: Item<T>;
  object: T;
  failed: boolean;
}

/** Statuses stored per transaction: one commit per batch instead of one per object on large syncs. */
const STATUS_BATCH = 1000;

interface Waiter {
  ready(): boolean;
  resolve(): void;
  reject(err: unknown): void;
}

/** Starts a reconciler for `opts.table`; it runs until `opts.signal` aborts. */
export function createReconciler<T, I extends string>(opts: ReconcilerOptions<T, I>): Reconciler<T> {
  const r = new Runner(opts);
  return { waitReconciled: (t, s) => r.waitReconciled(t, s), stopped: r.run() };
}

class Runner<T, I extends string> {
  private readonly table: Table<T, I>;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly signal: AbortSignal;
  private readonly work = new Map<string, Item<T>>();
  private waiters: Waiter[] = [];
  /** Every change up to this revision has been read. */
  private pos = 0;
  private nextRefreshAt: number | undefined;
  private nextPruneAt: number | undefined;
  private pruneDue: boolean;
  private pruneAttempts = 0;

  constructor(private readonly opts: ReconcilerOptions<T, I>) {
    this.table = opts.table;
    this.clock = opts.clock ?? realClock;
    this.log = (opts.log ?? silentLogger).child({ reconciler: opts.table.name });
    this.minMs = opts.retry?.minMs ?? 100;
    this.maxMs = opts.retry?.maxMs ?? 60_000;
    this.signal = opts.signal;
    this.pruneDue = opts.ops.prune !== undefined;
    if (opts.refreshIntervalMs !== undefined) this.nextRefreshAt = this.clock.now() + opts.refreshIntervalMs;
  }

  async run(): Promise<void> {
    // Deletions stay in the graveyard until the reconciler has read them (bounded by graveyardMax).
    const tracker = this.table.trackDeletes(0);
    try {
      while (!this.signal.aborted) {
        const watch = this.readChanges();
        tracker.advance(this.pos);
        await this.processDue();
        await this.maybePrune();
        this.settleWaiters();
        if (this.signal.aborted) break;
        // Our own status writes (or anyone's) since the read: go round again without arming a timer.
        if (this.table.revision(this.table.db.readTxn()) > this.pos) continue;
        await this.sleep(watch);
      }
    } catch (err) {
      this.log.error({ err }, "reconciler stopped on an unexpected error");
    } finally {
      tracker.close();
      const reason = new StatusError(Code.Canceled, `reconciler: "${this.table.name}" stopped`);
      for (const w of this.waiters.splice(0)) w.reject(reason);
    }
  }

  waitReconciled(target: number | readonly T[], signal?: AbortSignal): Promise<void> {
    let ready: () => boolean;
    if (typeof target === "number") {
      // A target beyond the table's last change (e.g. db.revision() after writes elsewhere) means "everything so far".
      ready = () =>
        this.pos >= Math.min(target, this.table.revision(this.table.db.readTxn())) &&
        ![...this.work.values()].some((it) => it.blocking && it.changeRevision <= target);
    } else {
      const upTo = this.table.revision(this.table.db.readTxn());
      const keys = new Set(target.map((o) => this.table.primaryKey(o)));
      ready = () => this.pos >= upTo && ![...keys].some((k) => this.work.get(k)?.blocking);
    }
    if (this.signal.aborted) return Promise.reject(new StatusError(Code.Canceled, `reconciler: "${this.table.name}" stopped`));
    if (ready()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        ready,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject: (err) => {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Reads new changes into the work queue; returns the watch for the next commit. */
  private readChanges(): Promise<void> {
    const txn = this.table.db.readTxn();
    let batch: ReturnType<typeof this.table.changeBatch>;
    try {
      batch = this.table.changeBatch(txn, this.pos);
    } catch (err) {
      if (!(err instanceof ResyncRequiredError)) throw err;
      // Deletions we missed are left to prune; everything live is looked at again.
      this.log.warn({ err }, "reconciler fell behind the graveyard; resyncing");
      batch = this.table.changeBatch(txn, 0);
    }
    for (const c of batch.changes) this.onChange(c);
    this.pos = batch.revision;
    return batch.watch;
  }

  private onChange(c: Change<T>): void {
    if (c.deleted) {
      this.enqueue("delete", c, true);
      return;
    }
    const kind = this.opts.getStatus(c.object).kind;
    // An error nobody is retrying (e.g. stored by a previous run of the process) is retried too.
    if (kind === "pending" || (kind === "error" && !this.work.has(c.key))) this.enqueue("update", c, true);
  }

  private enqueue(kind: Item<T>["kind"], c: Change<T>, blocking: boolean): void {
    this.work.set(c.key, {
      kind,
      key: c.key,
      object: c.object,
      revision: c.revision,
      changeRevision: c.revision,
      attempts: 0,
      retryAt: undefined,
      blocking,
    });
  }

  private async processDue(): Promise<void> {
    const now = this.clock.now();
    if (this.nextRefreshAt !== undefined && now >= this.nextRefreshAt) {
      this.nextRefreshAt = now + (this.opts.refreshIntervalMs ?? 0);
      const txn = this.table.db.readTxn();
      for (const obj of this.table.all(txn)) {
        const key = this.table.primaryKey(obj);
        const entry = this.table.getEntry(txn, key);
        if (entry && !this.work.has(key) && this.opts.getStatus(obj).kind === "done") this.enqueue("update", entry, false);
      }
    }
    let writes: Array<StatusWrite<T>> = [];
    for (const item of [...this.work.values()]) {
      if (this.signal.aborted) return;
      if (item.retryAt !== undefined && item.retryAt > this.clock.now()) continue;
      const w = await this.apply(item);
      if (w) writes.push(w);
      if (writes.length >= STATUS_BATCH) {
        await this.flush(writes);
        writes = [];
      }
    }
    if (writes.length && !this.signal.aborted) await this.flush(writes);
  }

  /** Runs one operation; returns the status to store (written in batches by `flush`). */
  private async apply(item: Item<T>): Promise<StatusWrite<T> | undefined> {
    const { ops, setStatus } = this.opts;
    let error: unknown;
    try {
      if (item.kind === "update") await ops.update(item.object, this.signal);
      else await ops.delete(item.object, this.signal);
    } catch (err) {
      error = err;
    }
    if (this.signal.aborted) return undefined;
    const current = this.work.get(item.key) === item;
    if (error === undefined) {
      if (current) this.work.delete(item.key);
      // A refresh that succeeds leaves the stored status alone (no write, no new revision).
      if (item.kind === "update" && (item.blocking || item.attempts > 0)) {
        return { item, object: setStatus(item.object, this.status("done", item)), failed: false };
      }
      return undefined;
    }
    item.attempts++;
    item.blocking = true;
    item.retryAt = this.clock.now() + this.backoff(item.attempts);
    const message = error instanceof Error ? error.message : String(error);
    this.log.debug({ key: item.key, op: item.kind, attempts: item.attempts, err: error }, "reconcile failed; will retry");
    if (item.kind !== "update" || !current) return undefined;
    return { item, object: setStatus(item.object, this.status("error", item, message)), failed: true };
  }

  /**
   * Stores statuses in one transaction, each only if its object is still the version the operation acted
   * on (compare-and-swap on the revision); a newer version wins and is reconciled next.
   */
  private async flush(writes: Array<StatusWrite<T>>): Promise<void> {
    let revisions: Array<number | undefined>;
    try {
      revisions = await this.table.db.update(this.table, (txn) =>
        writes.map((w) =>
          this.table.compareAndSwap(txn, w.item.revision, w.object) ? this.table.getEntry(txn, w.item.key)?.revision : undefined,
        ),
      );
    } catch (err) {
      this.log.error({ err }, "reconciler could not store statuses");
      return;
    }
    writes.forEach((w, i) => {
      if (!w.failed) return;
      const revision = revisions[i];
      if (revision === undefined) {
        if (this.work.get(w.item.key) === w.item) this.work.delete(w.item.key);
      } else {
        // The retry acts on the version carrying the error status.
        w.item.object = w.object;
        w.item.revision = revision;
      }
    });
  }

  private status(kind: StatusKind, item: Item<T>, message?: string): Status {
    const s = { kind, revision: item.changeRevision, updatedAt: this.clock.now() };
    return message === undefined ? s : { ...s, message };
  }

  private async maybePrune(): Promise<void> {
    const prune = this.opts.ops.prune;
    if (!prune || this.signal.aborted) return;
    const now = this.clock.now();
    if (this.nextPruneAt !== undefined && now >= this.nextPruneAt) {
      this.pruneDue = true;
      this.nextPruneAt = undefined;
    }
    const txn = this.table.db.readTxn();
    if (!this.pruneDue || !this.table.initialized(txn)) return;
    try {
      await prune([...this.table.all(txn)], this.signal);
      this.pruneDue = false;
      this.pruneAttempts = 0;
      if (this.opts.pruneIntervalMs !== undefined) this.nextPruneAt = this.clock.now() + this.opts.pruneIntervalMs;
    } catch (err) {
      this.pruneAttempts++;
      this.pruneDue = false;
      this.nextPruneAt = this.clock.now() + this.backoff(this.pruneAttempts);
      this.log.warn({ err, attempts: this.pruneAttempts }, "prune failed; will retry");
    }
  }

  private backoff(attempts: number): number {
    return Math.min(this.minMs * 2 ** Math.min(attempts - 1, 40), this.maxMs);
  }

  private settleWaiters(): void {
    if (!this.waiters.length) return;
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) {
      if (w.ready()) w.resolve();
      else this.waiters.push(w);
    }
  }

  /** Waits for the next commit, the next retry/refresh/prune time, table initialization, or abort. */
  private sleep(watch: Promise<void>): Promise<void> {
    let next: number | undefined;
    for (const it of this.work.values()) {
      const at = it.retryAt ?? this.clock.now();
      if (next === undefined || at < next) next = at;
    }
    for (const at of [this.nextRefreshAt, this.nextPruneAt]) {
      if (at !== undefined && (next === undefined || at < next)) next = at;
    }
    const waits: Array<Promise<void>> = [watch];
    if (this.pruneDue) waits.push(this.table.waitInitialized());
    return new Promise<void>((resolve) => {
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        timer?.stop();
        this.signal.removeEventListener("abort", finish);
        resolve();
      };
      const timer = next === undefined ? undefined : this.clock.setTimer(Math.max(0, next - this.clock.now()), finish);
      this.signal.addEventListener("abort", finish, { once: true });
      for (const p of waits) void p.then(finish);
    });
  }
}
