/**
 * What a write changes downstream: the snapshot after the write is compiled for every cluster target and
 * compared with the stored desired state; each cluster target whose resources differ gets the next outbox
 * entry (only the changed paths) and its intents' statuses become pending. Targets that disappeared lose
 * their desired state.
 */
import { compileCluster, type DesiredTree } from "./compile/index.js";
import type { KvEntry } from "./kv/index.js";
import { type DesiredState, keys, type OutboxEntry, type Snapshot, type StatusMap } from "./model.js";

/** A planned change of one cluster target. */
export interface TargetChange {
  readonly cluster: string;
  readonly target: string;
  readonly desired: DesiredState | undefined;
  readonly entry: OutboxEntry | undefined;
}

/** Parses a stored desired state. */
export function parseDesired(e: KvEntry | undefined): DesiredState {
  return e === undefined ? { seq: "0", tree: {} } : (JSON.parse(e.value) as DesiredState);
}

/**
 * Parses a stored status map. An intent revision "0" was written by the transaction that wrote the intent, so
 * it is the key's own revision; it is resolved on every read, before any rewrite changes that revision.
 */
export function parseStatus(e: KvEntry | undefined): StatusMap {
  if (e === undefined) return {};
  const m = JSON.parse(e.value) as StatusMap;
  for (const s of Object.values(m)) if (s.intentRevision === "0") s.intentRevision = e.modRevision;
  return m;
}

/**
 * Plans the downstream change of a write. `stored` holds the desired-state entries by key; `changed` lists the
 * intents the write touched (their revision becomes the commit's, hence "0").
 */
export function plan(snap: Snapshot, stored: ReadonlyMap<string, KvEntry>, changed: ReadonlySet<string>, reason: string): TargetChange[] {
  const out: TargetChange[] = [];
  const seen = new Set<string>();
  for (const cluster of snap.clusters.values()) {
    for (const [target, tree] of compileCluster(cluster, snap)) {
      const key = keys.desired(cluster.name, target);
      seen.add(key);
      const old = parseDesired(stored.get(key));
      const entry = diff(old, tree, snap, changed, reason);
      if (entry === undefined) continue;
      out.push({ cluster: cluster.name, target, desired: { seq: entry.seq, tree: Object.fromEntries(tree) }, entry });
    }
  }
  for (const key of stored.keys()) {
    if (seen.has(key)) continue;
    const [cluster = "", target = ""] = key.slice(keys.desiredPrefix.length).split("/");
    out.push({ cluster, target, desired: undefined, entry: undefined });
  }
  return out;
}

function diff(old: DesiredState, tree: DesiredTree, snap: Snapshot, changed: ReadonlySet<string>, reason: string): OutboxEntry | undefined {
  const puts: Record<string, string> = {};
  const deletes: string[] = [];
  const touched = new Set<string>();
  for (const [path, r] of tree) {
    const was = old.tree[path];
    if (was?.content === r.content) continue;
    puts[path] = r.content;
    for (const i of [...r.intents, ...(was?.intents ?? [])]) touched.add(i);
  }
  for (const [path, was] of Object.entries(old.tree)) {
    if (tree.has(path)) continue;
    deletes.push(path);
    for (const i of was.intents) touched.add(i);
  }
  if (Object.keys(puts).length === 0 && deletes.length === 0) return undefined;
  const intents = [...touched]
    .filter((id) => snap.intents.has(id))
    .sort()
    .map((id) => ({ id, revision: changed.has(id) ? "0" : String(snap.intents.get(id)?.revision ?? "0") }));
  return { seq: String(BigInt(old.seq) + 1n), puts, deletes: deletes.sort(), intents, reason };
}

/** The status map after enqueueing `entry`: its intents pending, intents no longer in the tree dropped. */
export function pendingStatus(old: StatusMap, entry: OutboxEntry | undefined, tree: DesiredState | undefined, snap: Snapshot): StatusMap {
  const live = new Set<string>();
  for (const r of Object.values(tree?.tree ?? {})) for (const i of r.intents) live.add(i);
  const out: StatusMap = {};
  for (const [id, s] of Object.entries(old)) if (live.has(id) && snap.intents.has(id)) out[id] = s;
  for (const i of entry?.intents ?? []) {
    if (!live.has(i.id)) continue;
    out[i.id] = { state: "pending", intentRevision: i.revision, sequence: entry?.seq ?? "0", attempts: 0, lastError: "" };
  }
  return out;
}
