/**
 * The peer mesh of a vL3 endpoint: watches the registry for the other endpoints of its network service (Find
 * with watch) and holds one client connection to each peer whose name sorts before its own, closing it when the
 * peer leaves (unregistered or expired). Upstream's vL3 endpoint connects once at start to the peers registered
 * before it; ordering by name instead gives every pair exactly one connection whoever starts, restarts or
 * re-registers first, and the watch follows joins and leaves. The client chain (with `vl3.newClient` and heal)
 * keeps each connection alive; a failed Request is tried again every `retryIntervalMs` while the peer is listed.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { Connection, MechanismSchema } from "@nsm-ts/api/networkservice";
import { type NetworkServiceEndpoint, NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import type { NseHandler } from "../../../registry/core/index.js";
import type { NsmClient } from "../../chains/client.js";

/** Options of `createVl3Peers`. */
export interface Vl3PeersOptions {
  /** This endpoint's registered name (skipped in the watch; the ordering key). */
  name: string;
  /** The vL3 network service. */
  networkService: string;
  /** Registry to watch (the nsmgr's registry proxy, through a registry client). */
  registry: NseHandler;
  /** The client chain that connects to peers (with `vl3.newClient`, `vl3mtu.newClient` and a mechanism). */
  client: NsmClient;
  /** Mechanisms to offer the peer; default the client's own `mechanismPreferences`. */
  mechanismPreferences?: MessageInitShape<typeof MechanismSchema>[];
  /** Labels of the peer connections (upstream's NSM_REQUEST_LABELS); default none. */
  labels?: Readonly<Record<string, string>>;
  /** Pause between failed Requests to a peer and before re-watching a broken registry stream; default 1 000 ms. */
  retryIntervalMs?: number;
  /** Clock of the pauses; default the real clock. */
  clock?: Clock;
  /** Logger; default silent. */
  log?: Logger;
  /**
   * Called when a connection to `peer` is established (`conn`) and when it is closed because the peer left
   * (`undefined`): with the member hook, how a name server learns the peers this endpoint dialled. Default none.
   */
  onPeer?: (peer: string, conn: Connection | undefined) => void;
}

/** A running peer mesh. */
export interface Vl3Peers {
  /** Names of the peers with an established connection. */
  connected(): string[];
  /** Resolves once a connection to `peer` is established (for tests and start-up logs). */
  whenConnected(peer: string): Promise<Connection>;
  /** Stops watching and closes every peer connection. */
  close(): Promise<void>;
}

interface Peer {
  ac: AbortController;
  conn: Connection | undefined;
  done: Promise<void>;
}

/** Starts the peer mesh (see the header comment). */
export function createVl3Peers(opts: Vl3PeersOptions): Vl3Peers {
  const clock = opts.clock ?? realClock;
  const log = opts.log ?? silentLogger;
  const retryMs = opts.retryIntervalMs ?? 1000;
  const lifetime = new AbortController();
  const peers = new Map<string, Peer>();
  const waiters = new Map<string, Array<(c: Connection) => void>>();

  const pause = (signal: AbortSignal): Promise<boolean> =>
    clock.sleep(retryMs, signal).then(
      () => true,
      () => false,
    );

  const connect = async (name: string, p: Peer): Promise<void> => {
    while (!p.ac.signal.aborted) {
      try {
        const conn = await opts.client.request(
          {
            connection: {
              id: `vl3-${opts.name}-${name}`,
              networkService: opts.networkService,
              networkServiceEndpointName: name,
              labels: { ...(opts.labels ?? {}) },
            },
            ...(opts.mechanismPreferences ? { mechanismPreferences: opts.mechanismPreferences } : {}),
          },
          { signal: p.ac.signal },
        );
        p.conn = conn;
        log.info({ connId: conn.id, peer: name, src: conn.context?.ipContext?.srcIpAddrs }, "vl3: connected to peer");
        for (const w of waiters.get(name)?.splice(0) ?? []) w(conn);
        opts.onPeer?.(name, conn);
        return;
      } catch (err) {
        if (p.ac.signal.aborted) return;
        log.warn({ peer: name, err }, "vl3: connecting to peer failed; trying again");
        if (!(await pause(p.ac.signal))) return;
      }
    }
  };

  const join = (name: string): void => {
    if (peers.has(name) || lifetime.signal.aborted) return;
    const p: Peer = { ac: new AbortController(), conn: undefined, done: Promise.resolve() };
    peers.set(name, p);
    log.info({ peer: name }, "vl3: peer joined");
    p.done = connect(name, p);
  };

  const leave = async (name: string): Promise<void> => {
    const p = peers.get(name);
    if (p === undefined) return;
    peers.delete(name);
    p.ac.abort();
    await p.done;
    if (p.conn !== undefined) {
      await opts.client.close(p.conn).catch((err: unknown) => log.warn({ peer: name, err }, "vl3: closing the peer connection failed"));
      log.info({ connId: p.conn.id, peer: name }, "vl3: disconnected from peer");
      opts.onPeer?.(name, undefined);
    }
  };

  const watch = async (): Promise<void> => {
    const template = create(NetworkServiceEndpointSchema, { networkServiceNames: [opts.networkService] });
    while (!lifetime.signal.aborted) {
      try {
        const ctx = CallContext.create({ log, clock, signal: lifetime.signal });
        for await (const ev of opts.registry.find(ctx, { template, watch: true })) {
          const e: NetworkServiceEndpoint = ev.entry;
          // Later names connect to earlier ones: one connection per pair (see the header comment).
          if (e.name === opts.name || !(e.name < opts.name)) continue;
          if (ev.deleted) void leave(e.name);
          else join(e.name);
        }
      } catch (err) {
        if (lifetime.signal.aborted) return;
        log.warn({ err, networkService: opts.networkService }, "vl3: registry watch broke; watching again");
      }
      if (!(await pause(lifetime.signal))) return;
    }
  };
  const watching = watch();

  return {
    connected: () => [...peers].filter(([, p]) => p.conn !== undefined).map(([n]) => n),
    whenConnected(peer) {
      const c = peers.get(peer)?.conn;
      if (c !== undefined) return Promise.resolve(c);
      return new Promise((resolve) => waiters.set(peer, [...(waiters.get(peer) ?? []), resolve]));
    },
    async close() {
      lifetime.abort();
      await watching;
      await Promise.all([...peers.keys()].map((n) => leave(n)));
    },
  };
}
