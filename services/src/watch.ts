/**
 * Watches of the model: the resolved view per node (what data planes consume: one event per change of a
 * service, deletions included) and the plain per-table watches behind the Watch RPCs.
 */
import { create } from "@bufbuild/protobuf";
import { type ResolvedService, type ResolvedServiceEvent, ResolvedServiceEventSchema, ResolvedServiceSchema } from "@nsm-ts/api/services";
import { ResyncRequiredError, type Table } from "@nsm-ts/statedb";
import type { ServiceModel } from "./model.js";

/** Which resolved services to list or watch. */
export interface ResolvedQuery {
  /** The watching node: local redirects apply for it (empty: none apply). */
  readonly node?: string;
  /** One service (empty: every one). */
  readonly service?: string;
  /** Watch only: start with changes, not the current services. */
  readonly skipExisting?: boolean;
}

/** Every resolved service matching `q`, now. */
export function listResolved(model: ServiceModel, q: ResolvedQuery = {}): ResolvedService[] {
  const txn = model.readTxn();
  const names = q.service ? [q.service] : model.serviceNames(txn);
  const out: ResolvedService[] = [];
  for (const n of names) {
    const r = model.resolve(txn, n, q.node ?? "");
    if (r !== undefined) out.push(r);
  }
  return out;
}

/** Resolves when `p` settles or `signal` aborts (then false). */
function until(p: Promise<void>, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => resolve(false);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    });
  });
}

/**
 * The resolved services matching `q` (unless `skipExisting`), then one event per change of a matching service
 * until `signal` aborts: the new view, or `deleted` once no source describes it any more. Several changes between
 * two reads arrive as one event with the latest view. After the current services comes one `synced` event.
 */
export async function* watchResolved(model: ServiceModel, q: ResolvedQuery, signal: AbortSignal): AsyncGenerator<ResolvedServiceEvent> {
  const epochs = model.tables.epochs;
  const node = q.node ?? "";
  const shown = new Set<string>();
  let after = 0;
  // Whether the next batch is a full listing that ends with `synced`.
  let listing = !q.skipExisting;
  if (q.skipExisting) {
    const txn = model.readTxn();
    after = epochs.revision(txn);
    for (const n of model.serviceNames(txn)) if (model.resolve(txn, n, node) !== undefined) shown.add(n);
  }
  while (!signal.aborted) {
    const txn = model.readTxn();
    let batch: ReturnType<typeof epochs.changeBatch>;
    try {
      batch = epochs.changeBatch(txn, after);
    } catch (err) {
      if (!(err instanceof ResyncRequiredError)) throw err;
      // We fell behind the tombstones: start over from everything, and report what vanished meanwhile.
      const now = new Set(model.serviceNames(txn));
      for (const n of [...shown]) {
        if (now.has(n) || (q.service && n !== q.service)) continue;
        shown.delete(n);
        yield deleted(n, String(epochs.revision(txn)));
      }
      after = 0;
      listing = true;
      continue;
    }
    for (const c of batch.changes) {
      if (q.service && c.key !== q.service) continue;
      const r = c.deleted ? undefined : model.resolve(txn, c.key, node);
      if (r !== undefined) {
        shown.add(c.key);
        yield create(ResolvedServiceEventSchema, { service: r });
      } else if (shown.delete(c.key)) {
        yield deleted(c.key, String(c.revision));
      }
    }
    if (listing) yield create(ResolvedServiceEventSchema, { synced: true });
    listing = false;
    after = batch.revision;
    if (!(await until(batch.watch, signal))) return;
  }
}

function deleted(name: string, revision: string): ResolvedServiceEvent {
  return create(ResolvedServiceEventSchema, { service: create(ResolvedServiceSchema, { name, revision }), deleted: true });
}

/**
 * Changes of one table as (object with revision, deleted), the current objects first unless `skipExisting`,
 * filtered by `keep`, until `signal` aborts.
 */
export async function* watchTable<T extends { revision: string }>(
  model: ServiceModel,
  table: Table<T, string>,
  keep: (o: T) => boolean,
  skipExisting: boolean,
  signal: AbortSignal,
): AsyncGenerator<{ object: T; deleted: boolean }> {
  const from = skipExisting ? table.revision(model.readTxn()) : 0;
  for await (const c of table.changes(from, signal)) {
    if (!keep(c.object)) continue;
    yield { object: { ...c.object, revision: String(c.revision) }, deleted: c.deleted };
  }
}
