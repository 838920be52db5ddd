/**
 * The HTTP/2 connections of a grpc-js server, seen from our side: keepalive pings that end a connection whose peer
 * stopped answering, the sockets under them, and GOAWAY to all of them (certificate rotation).
 *
 * Why the socket: when both ends of a connection are Node and both have more to send than the socket buffers
 * hold, each HTTP/2 session stops reading until its own write is done, and neither write ever finishes
 * (docs/reliability.md#http2-stall-between-two-node-peers-keepalive). Such a session cannot be closed or destroyed
 * through HTTP/2 (Node waits for the pending write first), so its file descriptor and buffers would stay for the
 * life of the process. Destroying the socket fails the pending write and ends the session; the peer sees the
 * connection end, its own stuck write fails and it reconnects. grpc-js's own server keepalive destroys only the
 * session, which is why this replaces it.
 */
import type { EventEmitter } from "node:events";
import type { Http2Session } from "node:http2";
import type { Socket } from "node:net";
import type * as grpc from "@grpc/grpc-js";
import type { Logger } from "../log/index.js";
import type { Keepalive } from "./channel.js";

/** Marks the socket under a session: set when the server accepts it, read back through the session. */
const SOCKET = Symbol("nsmts.socket");

/** grpc-js keeps its HTTP/2 servers in this private map (checked at run time; grpc-js is pinned). */
interface ServerInternals {
  http2Servers?: Map<EventEmitter, unknown>;
}

/** The HTTP/2 servers of `server`, or undefined when the grpc-js internals are missing. */
function http2ServersOf(server: grpc.Server): Iterable<EventEmitter> | undefined {
  const servers = (server as unknown as ServerInternals).http2Servers;
  return servers instanceof Map ? servers.keys() : undefined;
}

/** The connections of one server, each with the socket under its session. */
export interface ServerSessions {
  /** Starts watching the HTTP/2 servers grpc-js created since the last call (call after every bind). */
  adopt(): void;
  /** Destroys the socket of every connection still open. */
  destroyAll(): void;
  /** Sends GOAWAY on every open connection (graceful: calls in progress complete, new ones go to a new connection). */
  goawayAll(): void;
  /** Stops the pings (the connections stay). */
  stop(): void;
}

/**
 * Watches the connections of `server`. With `keepalive`, every open connection is pinged each `timeMs` and a
 * connection whose ping is unanswered `timeoutMs` later has its socket destroyed (logged at WARN). The pings run
 * also on idle connections: a connection that stalled has no call left to notice it. One interval and one
 * timeout per server, not per connection; both unref'd (transport timers, like grpc-js's own keepalive).
 */
export function watchSessions(server: grpc.Server, keepalive: Keepalive | false, log: Logger): ServerSessions {
  const adopted = new WeakSet<EventEmitter>();
  /** Open sessions, each with its socket (undefined if it was accepted before `adopt`) and its unanswered ping. */
  const open = new Map<Http2Session, { socket: Socket | undefined; pingSentAt: number | undefined; ended: boolean }>();
  let interval: NodeJS.Timeout | undefined;
  let check: NodeJS.Timeout | undefined;
  let stopped = false;

  const end = (session: Http2Session, entry: { socket: Socket | undefined; ended: boolean }, why: string): void => {
    entry.ended = true;
    log.warn({ peer: peerOf(entry.socket), why }, "grpc: server connection ended");
    cut(session, entry.socket);
  };

  /** Ends every connection whose ping has waited `timeoutMs` or longer. */
  const expire = (timeoutMs: number): void => {
    const now = performance.now();
    for (const [session, entry] of open) {
      if (!entry.ended && entry.pingSentAt !== undefined && now - entry.pingSentAt >= timeoutMs) {
        end(session, entry, `no answer to a ping within ${timeoutMs} ms`);
      }
    }
  };

  const ping = (k: Keepalive): void => {
    expire(k.timeoutMs);
    const sentAt = performance.now();
    for (const [session, entry] of open) {
      if (entry.ended || entry.pingSentAt !== undefined || session.closed || session.destroyed) continue;
      entry.pingSentAt = sentAt;
      let sent = false;
      try {
        sent = session.ping(() => {
          // Any answer, or an error that ended the session: the ping is settled either way.
          entry.pingSentAt = undefined;
        });
      } catch {
        sent = false;
      }
      if (!sent) entry.pingSentAt = undefined;
    }
    if (check === undefined) {
      check = setTimeout(() => {
        check = undefined;
        expire(k.timeoutMs);
      }, k.timeoutMs);
      check.unref();
    }
  };

  const onSocket = (socket: Socket): void => {
    (socket as unknown as Record<symbol, Socket>)[SOCKET] = socket;
  };
  const onSession = (session: Http2Session): void => {
    // A session's `socket` is a proxy that refuses `destroy` but passes other properties on to the socket.
    let socket: Socket | undefined;
    try {
      socket = Reflect.get(session.socket, SOCKET) as Socket | undefined;
    } catch {
      socket = undefined;
    }
    open.set(session, { socket, pingSentAt: undefined, ended: false });
    session.once("close", () => open.delete(session));
  };

  return {
    adopt() {
      // The pings start with the first bound address (a server that never listens has nothing to ping).
      if (keepalive !== false && interval === undefined && !stopped) {
        interval = setInterval(() => ping(keepalive), keepalive.timeMs);
        interval.unref();
      }
      const servers = http2ServersOf(server);
      if (!servers) {
        log.warn("grpc: cannot reach grpc-js sessions; keepalive does not end stalled connections and rotation does not move them");
        return;
      }
      for (const h2 of servers) {
        if (adopted.has(h2)) continue;
        adopted.add(h2);
        // Plain servers make a session from each accepted socket, TLS servers from each TLS socket after its
        // handshake, in the listener Node adds first; ours must run before it to mark the socket.
        h2.prependListener("connection", onSocket);
        h2.prependListener("secureConnection", onSocket);
        h2.on("session", onSession);
      }
    },
    destroyAll() {
      for (const [session, entry] of open) cut(session, entry.socket);
    },
    goawayAll() {
      for (const session of open.keys()) if (!session.closed && !session.destroyed) session.close();
    },
    stop() {
      stopped = true;
      if (interval) clearInterval(interval);
      if (check) clearTimeout(check);
      check = undefined;
    },
  };
}

/** Ends a connection: its socket when known (this also ends a stalled session), else the session. */
function cut(session: Http2Session, socket: Socket | undefined): void {
  if (socket && !socket.destroyed) socket.destroy();
  else if (!session.destroyed) session.destroy();
}

function peerOf(socket: Socket | undefined): string | undefined {
  if (!socket) return undefined;
  return socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : "unix";
}
