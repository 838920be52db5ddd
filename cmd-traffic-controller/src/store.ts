/**
 * The intent store: clusters, traffic groups and intents with compare-and-set revisions, on a `Kv` (memory or
 * etcd). Every write is one transaction holding the object, the recompiled desired state of each affected
 * cluster target, the next outbox entry of each and the statuses it makes pending — all or nothing. Writers
 * serialise on the `st/gen` key's revision: a writer that lost the race re-reads and retries, so validation
 * and compilation always see the state they commit on top of, across replicas.
 */
import { clone, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { Cluster, Intent, TrafficGroup } from "@nsm-ts/api/intents";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { Code, fail } from "@nsm-ts/base/status";
import type { Kv, KvCompare, KvEntry } from "./kv/index.js";
import { decode, encode, intentId, keys, type Snapshot, schemas } from "./model.js";
import { parseStatus, pendingStatus, plan } from "./plan.js";

/** A read of everything the compiler needs, at one revision. */
export interface StoreRead {
  readonly snap: Snapshot;
  readonly revision: string;
  readonly genRevision: string;
  readonly desired: ReadonlyMap<string, KvEntry>;
}

/** A write's object changes, decided by a mutation from the current snapshot. */
export interface Mutation<R> {
  readonly puts: ReadonlyArray<{ key: string; value: string }>;
  readonly deletes: readonly string[];
  /** Intents written or deleted (their statuses and outbox entries carry the commit's revision). */
  readonly changedIntents: readonly string[];
  /** The snapshot after the write (what is compiled). */
  readonly next: Snapshot;
  /** Builds the answer from the commit revision. */
  readonly result: (revision: string) => R;
  readonly reason: string;
}

/** Options of `IntentStore`. */
export interface IntentStoreOptions {
  log?: Logger;
  /** Attempts of a write that keeps losing races to other writers before `Aborted`; default 20. */
  maxAttempts?: number;
}

/** The store; `kv` is owned by the caller. */
export class IntentStore {
  readonly log: Logger;
  private readonly maxAttempts: number;

  constructor(
    readonly kv: Kv,
    opts: IntentStoreOptions = {},
  ) {
    this.log = opts.log ?? silentLogger;
    this.maxAttempts = opts.maxAttempts ?? 20;
  }

  /** Reads every object and desired state at one revision. */
  async read(): Promise<StoreRead> {
    const { entries, revision } = await this.kv.list("st/");
    const clusters = new Map<string, Cluster>();
    const groups = new Map<string, TrafficGroup>();
    const intents = new Map<string, Intent>();
    const desired = new Map<string, KvEntry>();
    let genRevision = "0";
    for (const e of entries) {
      if (e.key === keys.gen) genRevision = e.modRevision;
      else if (e.key.startsWith("st/cluster/")) clusters.set(e.key.slice(11), decode(schemas.cluster, e.value, e.modRevision));
      else if (e.key.startsWith("st/group/")) groups.set(e.key.slice(9), decode(schemas.group, e.value, e.modRevision));
      else if (e.key.startsWith("st/intent/")) intents.set(e.key.slice(10), decode(schemas.intent, e.value, e.modRevision));
      else if (e.key.startsWith(keys.desiredPrefix)) desired.set(e.key, e);
    }
    return { snap: { clusters, groups, intents }, revision, genRevision, desired };
  }

  /**
   * Runs `mutate` on a fresh read and commits its changes with everything they cause downstream; retries when
   * another writer committed in between. `mutate` throws to refuse (validation, revision mismatch).
   */
  async write<R>(mutate: (read: StoreRead) => Mutation<R>): Promise<R> {
    for (let attempt = 1; ; attempt++) {
      const read = await this.read();
      const m = mutate(read);
      const changes = plan(m.next, read.desired, new Set(m.changedIntents), m.reason);
      const compares: KvCompare[] = [{ key: keys.gen, modRevision: read.genRevision }];
      const puts = [...m.puts, { key: keys.gen, value: String(attempt) }];
      const deletes = [...m.deletes];
      for (const c of changes) {
        const dkey = keys.desired(c.cluster, c.target);
        compares.push({ key: dkey, modRevision: read.desired.get(dkey)?.modRevision ?? "0" });
        const skey = keys.status(c.cluster, c.target);
        const sEntry = await this.kv.get(skey);
        compares.push({ key: skey, modRevision: sEntry?.modRevision ?? "0" });
        if (c.desired === undefined) {
          // The target is gone: so are its desired state, statuses and undelivered entries.
          deletes.push(dkey, skey, ...(await this.kv.list(keys.outboxPrefix(c.cluster, c.target))).entries.map((e) => e.key));
          continue;
        }
        puts.push({ key: dkey, value: JSON.stringify(c.desired) });
        puts.push({ key: skey, value: JSON.stringify(pendingStatus(parseStatus(sEntry), c.entry, c.desired, m.next)) });
        if (c.entry !== undefined)
          puts.push({ key: keys.outbox(c.cluster, c.target, BigInt(c.entry.seq)), value: JSON.stringify(c.entry) });
      }
      const res = await this.kv.txn({ compares, puts, deletes });
      if (res.succeeded) {
        this.log.info(
          {
            reason: m.reason,
            revision: res.revision,
            deliveries: changes.filter((c) => c.entry).map((c) => `${c.cluster}/${c.target}#${c.entry?.seq}`),
          },
          "traffic-controller: committed",
        );
        return m.result(res.revision);
      }
      if (attempt >= this.maxAttempts)
        fail(Code.Aborted, `traffic-controller: ${m.reason}: lost ${attempt} races with concurrent writers; retry`);
    }
  }
}

/** Clears the revision before storing (the key's modRevision is the revision). */
export function stored<D extends DescMessage>(schema: D, msg: MessageShape<D>): string {
  const copy = clone(schema, msg);
  (copy as { revision?: string }).revision = "0";
  return encode(schema, copy);
}

/** Checks a compare-and-set revision: zero skips the check, else it must be the current one. */
export function checkRevision(what: string, sent: string, current: string | undefined): void {
  if (sent === "0" || sent === "" || current === undefined) return;
  if (sent !== current) fail(Code.Aborted, `traffic-controller: revision: ${what} is at revision ${current}, not ${sent}`);
}

export { intentId };
