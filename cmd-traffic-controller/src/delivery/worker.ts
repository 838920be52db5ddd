/**
 * The delivery worker of one cluster target: holds the target's lock (so replicas on one etcd never deliver
 * the same target at once), applies the outbox entries in sequence order, and records each success in one
 * transaction that deletes the entry and marks its intents applied — guarded by the lock, so a worker that
 * lost its lock records nothing. A failed apply marks the intents failed (attempts, last error) and retries
 * the same entry after a capped exponential backoff on the injected clock. After a crash the entry is still
 * in the outbox and is applied again, which the targets' idempotence turns into a no-op.
 */
import type { Clock } from "@nsm-ts/base/clock";
import type { Logger } from "@nsm-ts/base/log";
import type { Kv, KvEntry, KvLock } from "../kv/index.js";
import { keys, type OutboxEntry, type StatusMap } from "../model.js";
import { parseStatus } from "../plan.js";
import type { Delivery, DeliveryTarget } from "./target.js";

/** Tuning of the workers. */
export interface WorkerOptions {
  clock: Clock;
  log: Logger;
  /** First retry delay; default 1 000 ms. */
  backoffInitialMs?: number;
  /** Longest retry delay; default 300 000 ms (5 min). */
  backoffMaxMs?: number;
  /** Lock lease; default 10 000 ms. */
  lockTtlMs?: number;
  /** How often a replica that does not hold a target's lock tries to take it; default 2 000 ms. */
  lockRetryMs?: number;
  /** Called after each attempt (metrics). */
  onAttempt?: (cluster: string, target: string, ok: boolean) => void;
}

/** Delay before attempt `attempts + 1`: initial × 2^(attempts − 1), capped. */
export function backoffMs(attempts: number, initialMs: number, maxMs: number): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(30, Math.max(0, attempts - 1)));
}

/** Runs the worker of one cluster target until `signal` aborts. */
export async function runWorker(
  kv: Kv,
  cluster: string,
  target: string,
  t: DeliveryTarget,
  opts: WorkerOptions,
  signal: AbortSignal,
): Promise<void> {
  const log = opts.log.child({ cluster, target });
  while (!signal.aborted) {
    let lock: KvLock | undefined;
    try {
      lock = await kv.tryLock(`deliver/${cluster}/${target}`, opts.lockTtlMs ?? 10_000);
    } catch (err) {
      log.warn({ err }, "traffic-controller: delivery lock failed");
    }
    if (lock === undefined) {
      await opts.clock.sleep(opts.lockRetryMs ?? 2_000, signal).catch(() => undefined);
      continue;
    }
    log.debug("traffic-controller: delivering");
    const both = AbortSignal.any([signal, lock.lost]);
    try {
      await deliverWhileHeld(kv, cluster, target, t, lock, opts, log, both);
    } catch (err) {
      if (!both.aborted) log.warn({ err }, "traffic-controller: delivery loop failed; retaking the lock");
    } finally {
      await lock.release().catch(() => undefined);
    }
  }
}

async function deliverWhileHeld(
  kv: Kv,
  cluster: string,
  target: string,
  t: DeliveryTarget,
  lock: KvLock,
  opts: WorkerOptions,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  const prefix = keys.outboxPrefix(cluster, target);
  const initial = opts.backoffInitialMs ?? 1_000;
  const max = opts.backoffMaxMs ?? 300_000;
  let attempts = 0;
  let attemptsOf = "";
  while (!signal.aborted) {
    const { entries, revision } = await kv.list(prefix);
    const first = entries[0];
    if (first === undefined) {
      await nextPut(kv, prefix, revision, signal);
      continue;
    }
    const entry = JSON.parse(first.value) as OutboxEntry;
    const d: Delivery = { ...entry, cluster, revision: first.modRevision };
    if (attemptsOf !== first.key) {
      attempts = 0;
      attemptsOf = first.key;
    }
    try {
      await t.apply(d, signal);
    } catch (err) {
      if (signal.aborted) return;
      attempts++;
      opts.onAttempt?.(cluster, target, false);
      const delay = backoffMs(attempts, initial, max);
      const msg = (err as Error).message;
      log.warn({ seq: entry.seq, attempts, retryInMs: delay, err: msg }, "traffic-controller: delivery failed");
      await record(kv, cluster, target, lock, first, (m) => markFailed(m, d, attempts, msg));
      await opts.clock.sleep(delay, signal).catch(() => undefined);
      continue;
    }
    opts.onAttempt?.(cluster, target, true);
    if (!(await record(kv, cluster, target, lock, first, (m) => markApplied(m, d), first.key))) return; // lock lost
    log.info({ seq: entry.seq, reason: entry.reason }, "traffic-controller: delivered");
  }
}

/** Rewrites the target's status map (and deletes the delivered entry) under the lock; false when the lock is gone. */
async function record(
  kv: Kv,
  cluster: string,
  target: string,
  lock: KvLock,
  entry: KvEntry,
  change: (m: StatusMap) => void,
  deleteKey?: string,
): Promise<boolean> {
  const skey = keys.status(cluster, target);
  for (;;) {
    const cur = await kv.get(skey);
    const m = parseStatus(cur);
    change(m);
    const compares = [lock.compare, { key: skey, modRevision: cur?.modRevision ?? "0" }];
    if (deleteKey !== undefined) compares.push({ key: deleteKey, modRevision: entry.modRevision });
    const res = await kv.txn({
      compares,
      puts: [{ key: skey, value: JSON.stringify(m) }],
      deletes: deleteKey === undefined ? [] : [deleteKey],
    });
    if (res.succeeded) return true;
    // A status rewrite by the store races us: retry; a lost lock or a vanished entry: stop.
    const [held, still] = await Promise.all([kv.get(lock.compare.key), deleteKey === undefined ? entry : kv.get(deleteKey)]);
    if (held?.modRevision !== lock.compare.modRevision || still === undefined) return false;
  }
}

function markApplied(m: StatusMap, d: Delivery): void {
  for (const i of d.intents) {
    const s = m[i.id];
    if (s === undefined) continue;
    if (BigInt(s.sequence) <= BigInt(d.seq))
      m[i.id] = {
        state: "applied",
        intentRevision: i.revision === "0" ? d.revision : i.revision,
        sequence: d.seq,
        attempts: 0,
        lastError: "",
      };
    else m[i.id] = { ...s, state: "pending", attempts: 0, lastError: "" };
  }
}

function markFailed(m: StatusMap, d: Delivery, attempts: number, lastError: string): void {
  for (const i of d.intents) {
    const s = m[i.id];
    if (s === undefined) continue;
    m[i.id] = { ...s, state: "failed", attempts, lastError: lastError.slice(0, 2048) };
  }
}

/** Resolves at the next put under `prefix` after `revision`, or when `signal` aborts. */
async function nextPut(kv: Kv, prefix: string, revision: string, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return;
  let done: () => void = () => undefined;
  const woken = new Promise<void>((r) => {
    done = r;
  });
  const w = await kv.watch(
    prefix,
    revision,
    (ev) => ev.type === "put" && done(),
    () => done(),
  );
  signal.addEventListener("abort", done, { once: true });
  try {
    await woken;
  } finally {
    signal.removeEventListener("abort", done);
    await w.stop();
  }
}
