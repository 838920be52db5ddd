/**
 * Rotation of a `TlsSource` seen by connections that are already up. NSM's token policies tie every token to the
 * certificate of the connection it travels on (the previous hop's token must be signed by the peer's certificate
 * key), so after a rotation a connection still carrying the old certificate would fail every new call's policy
 * check. Both ends therefore move new calls to new connections: a server sends GOAWAY on its open connections
 * (calls in progress finish; clients reconnect, handshaking with the new certificate), and a channel starts a new
 * connection for new calls (calls in progress finish on the old one, which is closed once they are done).
 */
import type * as grpc from "@grpc/grpc-js";
import type { Logger } from "../log/index.js";
import { http2ServersOf } from "./server-sessions.js";

/**
 * Sends GOAWAY on every open connection of `server` (graceful: streams in progress complete). Returns false when the
 * grpc-js internals it relies on are missing, so the caller can say so instead of failing silently.
 */
export function goawayAll(server: grpc.Server): boolean {
  const servers = http2ServersOf(server);
  if (!servers) return false;
  for (const entry of servers.values()) {
    for (const session of entry.sessions ?? []) if (!session.closed && !session.destroyed) session.close();
  }
  return true;
}

/** After each change of `subscribe`'s source, moves `server`'s clients to new connections; returns the unsubscribe. */
export function goawayOnRotation(server: grpc.Server, subscribe: (listener: () => void) => () => void, log: Logger): () => void {
  return subscribe(() => {
    // After the other listeners of this change (the new secure context) have run.
    setImmediate(() => {
      if (!goawayAll(server)) log.warn("grpc: cannot reach grpc-js sessions; connections keep the old certificate until they close");
    });
  });
}
