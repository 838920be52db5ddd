/**
 * Keeps service tables applied in client namespaces: one object per (namespace, service) in a state table,
 * driven by `@nsm-ts/statedb`'s reconciler, so each service in each namespace is one unit with its own status
 * (pending, reconciled, error with the message), retried with exponential backoff on the injected clock,
 * refreshed, and pruned (tables of ours nobody wants any more are deleted).
 */
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { Code, StatusError } from "@nsm-ts/base/status";
import { createDb, type Db, type Table } from "@nsm-ts/statedb";
import { createReconciler, pendingStatus, type Reconciler, type Status } from "@nsm-ts/statedb/reconciler";
import type { Netns } from "../netns.js";
import { createNftExecutor, type NftExecutor } from "../nft/executor.js";
import { renderServiceTable, SERVICE_TABLE_PREFIX, serviceTableName } from "./render.js";
import type { Locality, ServiceView } from "./view.js";

/** One service in one client namespace. */
interface Rules {
  readonly key: string;
  readonly nsKey: string;
  readonly netns: Netns;
  readonly where: Locality;
  readonly view: ServiceView;
  readonly status: Status;
}

/** Status of one service in one namespace, as reported to the control plane. */
export interface ServiceRulesStatus {
  /** The namespace's URL. */
  readonly netns: string;
  readonly service: string;
  readonly state: "pending" | "reconciled" | "error";
  /** The error when `state` is `error`. */
  readonly message?: string;
  /** `ServiceView.revision` the status is about. */
  readonly revision: string;
}

/** Options of `createServiceDataplane`. */
export interface ServiceDataplaneOptions {
  /** Stops the reconciler; tables already applied stay until `removeNamespace` or a prune. */
  readonly signal: AbortSignal;
  /** How nft runs; default a new executor. */
  readonly exec?: NftExecutor;
  /** Default the real clock; MockClock in tests. */
  readonly clock?: Clock;
  readonly log?: Logger;
  /** Backoff of a failing service: `minMs` (default 100) doubling to `maxMs` (default 30 000). */
  readonly retry?: { readonly minMs?: number; readonly maxMs?: number };
  /** Re-apply every service this often (repairs tables changed behind our back); default 300 000, 0 = never. */
  readonly refreshIntervalMs?: number;
  /** Delete tables of ours that no object wants this often (after `synced()`); default 60 000. */
  readonly pruneIntervalMs?: number;
  /** This node (for `closest`) when namespaces are attached with `attach`; default node and zone empty. */
  readonly where?: Locality;
}

/** The data plane of services on one node. */
export interface ServiceDataplane {
  /**
   * Sets every service of one client namespace at once (services not listed are removed) and returns the
   * revision to pass to `waitReconciled`.
   */
  setNamespace(netns: Netns, where: Locality, views: readonly ServiceView[]): Promise<number>;
  /**
   * Creates or replaces one service: without `netns`, in every attached namespace and wherever it is already
   * programmed (and in namespaces attached later); with `netns`, there only.
   */
  upsert(view: ServiceView, netns?: Netns, where?: Locality): Promise<number>;
  /** Removes one service from every namespace. */
  remove(service: string): Promise<number>;
  /**
   * Programs every known service (those given to `upsert` without a namespace) into `netns`, a client namespace
   * this node serves; counted, so two connections of one client namespace attach it twice.
   */
  attach(netns: Netns): Promise<number>;
  /** Undoes one `attach`; the last one removes every service table from the namespace. */
  detach(netns: Netns): Promise<number>;
  /** Removes every service table from a namespace (the client's connection closed). */
  removeNamespace(netns: Netns): Promise<number>;
  /** Marks the first full listing of services as read: from now on, pruning may delete what nobody wants. */
  synced(): void;
  /** Status per (namespace, service). */
  statuses(): ServiceRulesStatus[];
  /** One service's status on this node: error if any namespace failed, pending if any is pending. */
  serviceStatus(service: string): ServiceRulesStatus | undefined;
  /** Status changes, starting with the current ones, until `signal` aborts. */
  watchStatus(signal: AbortSignal): AsyncIterable<ServiceRulesStatus>;
  /** Resolves once everything up to `revision` is applied (rejects on stop or `signal`). */
  waitReconciled(revision: number, signal?: AbortSignal): Promise<void>;
  /** Namespaces this data plane has put tables into and not yet seen cleaned (for a last cleanup at shutdown). */
  namespaces(): Netns[];
  /** Resolves once the reconciler stopped. */
  readonly stopped: Promise<void>;
}

const nsKeyOf = (ns: Netns): string => `${ns.dev}:${ns.inode}`;
const keyOf = (ns: Netns, service: string): string => `${nsKeyOf(ns)}|${service}`;

function toStatus(r: Rules): ServiceRulesStatus {
  const state = r.status.kind === "done" ? "reconciled" : r.status.kind;
  return {
    netns: r.netns.url,
    service: r.view.name,
    state,
    ...(r.status.message === undefined ? {} : { message: r.status.message }),
    revision: r.view.revision,
  };
}

function isNotFound(err: unknown): boolean {
  return err instanceof StatusError && err.code === Code.NotFound;
}

/** Starts the data plane's reconciler. */
export function createServiceDataplane(opts: ServiceDataplaneOptions): ServiceDataplane {
  const exec = opts.exec ?? createNftExecutor();
  const log = opts.log ?? silentLogger;
  const db: Db = createDb();
  const table: Table<Rules, "byNs" | "byService"> = db.createTable({
    name: "service-rules",
    primaryKey: (r: Rules) => r.key,
    indexes: {
      byNs: { kind: "multi", keys: (r: Rules) => [r.nsKey] },
      byService: { kind: "multi", keys: (r: Rules) => [r.view.name] },
    },
  });
  const markSynced = table.registerInitializer("views");
  const here = opts.where ?? { node: "", zone: "" };
  /** The node-wide services (by name) and the attached namespaces with their attach counts. */
  const views = new Map<string, ServiceView>();
  const attached = new Map<string, { netns: Netns; refs: number }>();
  /** Every namespace we put a table into, for pruning; forgotten once its last object is gone and pruned. */
  const touched = new Map<string, Netns>();

  const ops = {
    async update(r: Rules): Promise<void> {
      const t = renderServiceTable(r.view, r.where);
      if (t === undefined) await exec.delete(r.netns, { family: "inet", name: serviceTableName(r.view.name) });
      else await exec.apply(r.netns, t);
      log.debug({ netns: r.netns.url, service: r.view.name, revision: r.view.revision }, "services: rules applied");
    },
    async delete(r: Rules): Promise<void> {
      try {
        await exec.delete(r.netns, { family: "inet", name: serviceTableName(r.view.name) });
      } catch (err) {
        if (!isNotFound(err)) throw err; // a namespace that is gone took its tables with it
      }
    },
    async prune(desired: readonly Rules[]): Promise<void> {
      const want = new Set(desired.map((r) => `${r.nsKey}|${serviceTableName(r.view.name)}`));
      const live = new Set(desired.map((r) => r.nsKey));
      for (const [nsKey, ns] of touched) {
        try {
          for (const t of await exec.list(ns, SERVICE_TABLE_PREFIX)) {
            if (!want.has(`${nsKey}|${t.name}`)) {
              await exec.delete(ns, t);
              log.info({ netns: ns.url, table: t.name }, "services: pruned a table nobody wants");
            }
          }
        } catch (err) {
          if (!isNotFound(err)) throw err;
          touched.delete(nsKey);
          continue;
        }
        if (!live.has(nsKey)) touched.delete(nsKey);
      }
    },
  };

  const reconciler: Reconciler<Rules> = createReconciler({
    table,
    getStatus: (r) => r.status,
    setStatus: (r, status) => ({ ...r, status }),
    ops,
    signal: opts.signal,
    clock: opts.clock ?? realClock,
    log,
    retry: { minMs: opts.retry?.minMs ?? 100, maxMs: opts.retry?.maxMs ?? 30_000 },
    ...(opts.refreshIntervalMs === 0 ? {} : { refreshIntervalMs: opts.refreshIntervalMs ?? 300_000 }),
    pruneIntervalMs: opts.pruneIntervalMs ?? 60_000,
  });

  const put = (txn: Parameters<typeof table.insert>[0], netns: Netns, where: Locality, view: ServiceView): void => {
    touched.set(nsKeyOf(netns), netns);
    table.insert(txn, { key: keyOf(netns, view.name), nsKey: nsKeyOf(netns), netns, where, view, status: pendingStatus() });
  };

  const removeNamespace = (netns: Netns): Promise<number> =>
    db.update(table, (txn) => {
      attached.delete(nsKeyOf(netns));
      for (const r of table.list(txn, "byNs", nsKeyOf(netns))) table.delete(txn, r);
      return db.revision();
    });

  return {
    setNamespace(netns, where, views) {
      return db.update(table, (txn) => {
        const names = new Set(views.map((v) => v.name));
        for (const r of table.list(txn, "byNs", nsKeyOf(netns))) if (!names.has(r.view.name)) table.delete(txn, r);
        for (const v of views) {
          const old = table.get(txn, keyOf(netns, v.name));
          // Same view object and place: already applied (or being applied); do not reset its status.
          if (old?.view === v && old.where.node === where.node && old.where.zone === where.zone) continue;
          put(txn, netns, where, v);
        }
        return db.revision();
      });
    },
    upsert(view, netns, where) {
      return db.update(table, (txn) => {
        if (netns !== undefined) {
          const old = table.get(txn, keyOf(netns, view.name));
          put(txn, netns, where ?? old?.where ?? { node: "", zone: "" }, view);
        } else {
          views.set(view.name, view);
          const done = new Set<string>();
          for (const r of table.list(txn, "byService", view.name)) {
            put(txn, r.netns, r.where, view);
            done.add(r.nsKey);
          }
          for (const [k, a] of attached) if (!done.has(k)) put(txn, a.netns, here, view);
        }
        return db.revision();
      });
    },
    attach(netns) {
      const k = nsKeyOf(netns);
      const a = attached.get(k);
      if (a !== undefined) {
        a.refs++;
        return Promise.resolve(db.revision());
      }
      attached.set(k, { netns, refs: 1 });
      return db.update(table, (txn) => {
        for (const v of views.values()) if (table.get(txn, keyOf(netns, v.name))?.view !== v) put(txn, netns, here, v);
        return db.revision();
      });
    },
    detach(netns) {
      const k = nsKeyOf(netns);
      const a = attached.get(k);
      if (a !== undefined && --a.refs > 0) return Promise.resolve(db.revision());
      attached.delete(k);
      return removeNamespace(netns);
    },
    remove(service) {
      views.delete(service);
      return db.update(table, (txn) => {
        for (const r of table.list(txn, "byService", service)) table.delete(txn, r);
        return db.revision();
      });
    },
    removeNamespace,
    synced: markSynced,
    statuses: () => [...table.all(db.readTxn())].map(toStatus),
    serviceStatus(service) {
      const all = table.list(db.readTxn(), "byService", service).map(toStatus);
      return all.find((s) => s.state === "error") ?? all.find((s) => s.state === "pending") ?? all[0];
    },
    async *watchStatus(signal) {
      const it = table.changes(0, signal);
      for await (const c of it) if (!c.deleted) yield toStatus(c.object);
    },
    waitReconciled: (revision, signal) => reconciler.waitReconciled(revision, signal),
    namespaces: () => [...touched.values()],
    stopped: reconciler.stopped,
  };
}
