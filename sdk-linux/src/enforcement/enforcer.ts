/**
 * Keeps every attached connection's security groups, route table and policy routes applied in its client netns.
 * Desired state is a statedb table (one row per connection, with the records it was rendered from as indexed
 * dependencies); the statedb reconciler applies rows to the kernel with retries. A change feed from the resource
 * managers (`ResourceView.watch`) re-renders exactly the rows that depend on the changed record, so a group change
 * reaches every affected interface without polling.
 */
import { setMaxListeners } from "node:events";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { Code, StatusError } from "@nsm-ts/base/status";
import { createDb, type Table } from "@nsm-ts/statedb";
import { createReconciler, pendingStatus, type Reconciler, type Status } from "@nsm-ts/statedb/reconciler";
import { createIpExecutor, type IpExecutor } from "../executor.js";
import { type Netns, openNetns } from "../netns.js";
import { createNftExecutor, type NftExecutor } from "../nft/executor.js";
import { applyEnforcement, removeEnforcement } from "./apply.js";
import { type Attachment, ReadCache, type Rendered, renderAttachment, type StateText } from "./resolve.js";
import type { ResourceChange, ResourceView } from "./view.js";

export type { Attachment } from "./resolve.js";

interface Row extends Rendered {
  readonly status: Status;
}

type Index = "byGroup" | "byPort" | "bySubnet" | "byRouteTable";

/** Options of `createEnforcer`. */
export interface EnforcerOptions {
  /** Owner in table names, comments and policy-table ids (the forwarder's name). */
  readonly owner: string;
  readonly view: ResourceView;
  /** Stops the change feed and the reconciler; attached state stays in the kernel (a restart re-attaches). */
  readonly signal: AbortSignal;
  readonly exec?: IpExecutor;
  /** Runs `nft`; default a new executor. */
  readonly nft?: NftExecutor;
  readonly clock?: Clock;
  readonly log?: Logger;
  /** How long attach waits for the rules to be applied before failing the request; default 10 000 ms. */
  readonly applyTimeoutMs?: number;
  /**
   * Connections applied at the same time (one reconciler each over a share of the connections, by hash of the
   * id); default 4. Each apply is an nft process in another netns, so they overlap well.
   */
  readonly applyConcurrency?: number;
  /** Wait before re-opening a failed change feed; default 500 ms. */
  readonly watchRetryMs?: number;
}

/** A running enforcer. */
export interface Enforcer {
  /** Resolves once the change feed is established (attach waits for it too). */
  readonly ready: Promise<void>;
  /** Renders and applies the connection's enforcement; resolves when it is in the kernel. Idempotent (refresh). */
  attach(a: Attachment, signal?: AbortSignal): Promise<void>;
  /**
   * Removes the connection's enforcement. Without a row (a restarted forwarder) `where` names the netns and
   * interface, and removal works from the derived names alone.
   */
  detach(connectionId: string, where?: { netnsUrl: string; ifName: string }, signal?: AbortSignal): Promise<void>;
  /** Ids of the connections attached now. */
  attached(): string[];
  /** Resolves when everything written so far is applied (for tests and benchmarks). */
  settled(signal?: AbortSignal): Promise<void>;
  /** Resolves once feed and reconciler have stopped after `signal` aborted. */
  readonly stopped: Promise<void>;
}

/** Creates the enforcer and starts its change feed and reconciler. */
export function createEnforcer(opts: EnforcerOptions): Enforcer {
  const { owner, view } = opts;
  // One listener on the caller's signal; the feed, the shards' reconcilers and the waits listen on ours.
  const life = new AbortController();
  setMaxListeners(0, life.signal);
  const signal = life.signal;
  if (opts.signal.aborted) life.abort();
  else opts.signal.addEventListener("abort", () => life.abort(), { once: true });
  const log = opts.log ?? silentLogger;
  const clock = opts.clock ?? realClock;
  const exec = opts.exec ?? createIpExecutor();
  const nft = opts.nft ?? createNftExecutor();
  const applyTimeoutMs = opts.applyTimeoutMs ?? 10_000;
  const db = createDb();
  // The statedb reconciler applies one object at a time: shards run several side by side.
  const shards = Math.max(1, Math.floor(opts.applyConcurrency ?? 4));
  const tables: Table<Row, Index>[] = Array.from({ length: shards }, (_, i) =>
    db.createTable<Row, Index>({
      name: `enforcement-${i}`,
      primaryKey: (r) => r.connectionId,
      indexes: {
        byGroup: { kind: "multi", keys: (r) => [...r.deps.groups] },
        byPort: { kind: "multi", keys: (r) => [...r.deps.ports] },
        bySubnet: { kind: "multi", keys: (r) => [...r.deps.subnets] },
        byRouteTable: { kind: "multi", keys: (r) => [...r.deps.routeTables] },
      },
    }),
  );
  const shardOf = (id: string): number => {
    let h = 0;
    for (let i = 0; i < id.length; i++) h = (Math.imul(h, 31) + id.charCodeAt(i)) >>> 0;
    return h % shards;
  };
  const tableOf = (id: string): Table<Row, Index> => tables[shardOf(id)] as Table<Row, Index>;
  const netnsByConn = new Map<string, Promise<Netns>>();
  const netnsOf = (r: Attachment): Promise<Netns> => {
    let p = netnsByConn.get(r.connectionId);
    if (p === undefined) {
      p = openNetns(r.netnsUrl);
      p.catch(() => netnsByConn.delete(r.connectionId));
      netnsByConn.set(r.connectionId, p);
    }
    return p;
  };

  // What was last applied per connection, so a change re-applies only the part that differs. Cleared by attach
  // (a refresh re-applies everything, repairing what someone else changed) and by removal.
  const applied = new Map<string, StateText>();

  const reconcilers: Reconciler<Row>[] = tables.map((table) =>
    createReconciler<Row, Index>({
      table,
      getStatus: (r) => r.status,
      setStatus: (r, status) => ({ ...r, status }),
      ops: {
        update: async (r) => {
          const want = r.parts;
          const last = applied.get(r.connectionId);
          applied.delete(r.connectionId);
          const who = { owner, connectionId: r.connectionId, ifName: r.ifName };
          await applyEnforcement(exec, nft, await netnsOf(r), who, r.state, {
            nft: last?.nft !== want.nft,
            routing: last?.routing !== want.routing,
          });
          applied.set(r.connectionId, want);
        },
        delete: async (r) => {
          try {
            const ns = await netnsOf(r).catch((err: unknown) => {
              if (err instanceof StatusError && err.code === Code.NotFound) return undefined; // the pod is gone, and its rules with it
              throw err;
            });
            if (ns !== undefined) await removeEnforcement(exec, nft, ns, { owner, connectionId: r.connectionId, ifName: r.ifName });
          } finally {
            netnsByConn.delete(r.connectionId);
            applied.delete(r.connectionId);
          }
        },
      },
      signal,
      clock,
      log,
      retry: { minMs: 50, maxMs: 5_000 },
    }),
  );
  const reconcilerOf = (id: string): Reconciler<Row> => reconcilers[shardOf(id)] as Reconciler<Row>;

  const attachmentOf = (r: Attachment): string => JSON.stringify([r.netnsUrl, r.ifName, r.portId, r.peer, r.policies]);

  /** Writes renders whose result differs from the row's (re-render), or every one (attach: re-apply all). */
  async function write(rows: readonly Rendered[], fromAttach: boolean): Promise<void> {
    return db.update(tables, (txn) => {
      for (const r of rows) {
        const table = tableOf(r.connectionId);
        const cur = table.get(txn, r.connectionId);
        if (!fromAttach && cur === undefined) continue; // detached meanwhile
        if (fromAttach) {
          applied.delete(r.connectionId);
          if (cur !== undefined && (cur.netnsUrl !== r.netnsUrl || cur.ifName !== r.ifName)) netnsByConn.delete(r.connectionId);
        } else if (
          cur === undefined ||
          (cur.parts.nft === r.parts.nft && cur.parts.routing === r.parts.routing) ||
          attachmentOf(cur) !== attachmentOf(r)
        ) {
          // Unchanged, or attached again meanwhile (that attach rendered newer inputs): leave it.
          continue;
        }
        table.insert(txn, { ...r, status: pendingStatus() });
      }
    });
  }

  // Changes arrive one by one; a pass handles everything that arrived while the previous one ran.
  let pending: ResourceChange[] = [];
  let passRunning = false;
  let changeSeq = 0;
  let resyncAll = false;

  async function pass(): Promise<void> {
    if (passRunning) return;
    passRunning = true;
    try {
      while ((pending.length > 0 || resyncAll) && !signal.aborted) {
        const batch = pending;
        const all = resyncAll;
        pending = [];
        resyncAll = false;
        const cache = new ReadCache(view, signal);
        const txn = db.readTxn();
        const affected = new Map<string, Row>();
        const add = (rows: Iterable<Row>): void => {
          for (const r of rows) affected.set(r.connectionId, r);
        };
        const list = (index: Index, key: string): void => {
          for (const t of tables) add(t.list(txn, index, key));
        };
        if (all) for (const t of tables) add(t.all(txn));
        for (const c of batch) {
          if (c.kind === "securitygroup") list("byGroup", c.id);
          else if (c.kind === "subnet") list("bySubnet", c.id);
          else if (c.kind === "routetable") list("byRouteTable", c.id);
          else if (c.groups === undefined) {
            // Which groups the port left is unknown: any connection may have listed it as a member.
            for (const t of tables) add(t.all(txn));
          } else {
            list("byPort", c.id);
            // A port that joined, left or changed in a group changes the rules of everyone naming that group.
            for (const g of c.groups) list("byGroup", g);
          }
        }
        if (affected.size === 0) continue;
        const rendered = await Promise.all(
          [...affected.values()].map((r) =>
            renderAttachment(owner, r, cache, log).catch((err: unknown) => {
              log.warn({ err, connId: r.connectionId }, "enforcement: re-render failed; keeping the rules in place");
              return undefined;
            }),
          ),
        );
        await write(
          rendered.filter((r) => r !== undefined),
          false,
        );
      }
    } finally {
      passRunning = false;
    }
  }

  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    signal.addEventListener("abort", () => reject(new StatusError(Code.Canceled, "enforcement: stopped")), { once: true });
  });
  ready.catch(() => undefined);

  const feed = (async () => {
    let first = true;
    while (!signal.aborted) {
      try {
        const w = view.watch(signal);
        await w.ready;
        if (!first) {
          // Changes made while the feed was down are unknown: look at everything again.
          resyncAll = true;
          void pass().catch((err: unknown) => log.warn({ err }, "enforcement: change pass failed"));
        }
        first = false;
        markReady();
        for await (const c of w.changes) {
          changeSeq++;
          pending.push(c);
          void pass().catch((err: unknown) => log.warn({ err }, "enforcement: change pass failed"));
        }
      } catch (err) {
        if (signal.aborted) break;
        log.warn({ err }, "enforcement: the resource change feed failed; reopening it");
      }
      await clock.sleep(opts.watchRetryMs ?? 500, signal).catch(() => undefined);
    }
  })();

  /** Waits for one connection's row only: another connection failing to apply must not hold this one. */
  async function waitApplied(row: Rendered, outer?: AbortSignal): Promise<void> {
    const connectionId = row.connectionId;
    const timeout = AbortSignal.timeout(applyTimeoutMs);
    try {
      await reconcilerOf(connectionId).waitReconciled([row as Row], AbortSignal.any([timeout, ...(outer ? [outer] : [])]));
    } catch (err) {
      const st = tableOf(connectionId).get(db.readTxn(), connectionId)?.status;
      if (st?.kind === "error")
        throw new StatusError(Code.FailedPrecondition, `enforcement: connection ${connectionId}: ${st.message ?? "apply failed"}`);
      if (timeout.aborted)
        throw new StatusError(
          Code.DeadlineExceeded,
          `enforcement: connection ${connectionId}: rules not applied within ${applyTimeoutMs} ms`,
        );
      throw err;
    }
  }

  return {
    ready,
    async attach(a, outer) {
      // Without the change feed a later change would be missed: no rules rather than rules that go stale.
      const deadline = AbortSignal.any([AbortSignal.timeout(applyTimeoutMs), ...(outer ? [outer] : [])]);
      await Promise.race([
        ready,
        new Promise<never>((_, reject) => {
          const fail = (): void =>
            reject(
              new StatusError(
                Code.Unavailable,
                `enforcement: connection ${a.connectionId}: the resource managers' change feed is not established (port "${a.portId}")`,
              ),
            );
          if (deadline.aborted) fail();
          else deadline.addEventListener("abort", fail, { once: true });
        }),
      ]);
      for (;;) {
        const seq = changeSeq;
        const row = await renderAttachment(owner, a, new ReadCache(view, signal), log);
        await write([row], true);
        await waitApplied(row, outer);
        // A change that arrived while we rendered found no row to update: render again with it.
        if (seq === changeSeq) return;
      }
    },
    async detach(connectionId, where, outer) {
      const table = tableOf(connectionId);
      const had = await db.update(table, (txn) => table.deleteKey(txn, connectionId));
      if (had !== undefined) {
        await reconcilerOf(connectionId).waitReconciled(
          [had],
          AbortSignal.any([AbortSignal.timeout(applyTimeoutMs), ...(outer ? [outer] : [])]),
        );
      } else if (where !== undefined) {
        const ns = await openNetns(where.netnsUrl).catch(() => undefined);
        if (ns !== undefined) await removeEnforcement(exec, nft, ns, { owner, connectionId, ifName: where.ifName });
      }
    },
    attached: () => {
      const txn = db.readTxn();
      return tables.flatMap((t) => [...t.all(txn)].map((r) => r.connectionId));
    },
    settled: async (outer) => {
      const rev = db.revision();
      await Promise.all(reconcilers.map((r) => r.waitReconciled(rev, outer)));
    },
    stopped: Promise.all([feed, ...reconcilers.map((r) => r.stopped)]).then(() => undefined),
  };
}
