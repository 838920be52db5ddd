/**
 * Rotation of a `TlsSource` seen by connections that are already up. NSM's token policies tie every token to the
 * certificate of the connection it travels on (the previous hop's token must be signed by the peer's certificate
 * key), so after a rotation a connection still carrying the old certificate would fail every new call's policy
 * check. Both ends therefore move new calls to new connections: a server sends GOAWAY on its open connections
 * (calls in progress finish; clients reconnect, handshaking with the new certificate), and a channel starts a new
 * connection for new calls (calls in progress finish on the old one, which is closed once they are done).
 */
/**
 * After each change of `subscribe`'s source, sends GOAWAY on every open connection (`goawayAll`, graceful: streams in
 * progress complete); returns the unsubscribe.
 */
export function goawayOnRotation(goawayAll: () => void, subscribe: (listener: () => void) => () => void): () => void {
  return subscribe(() => {
    // After the other listeners of this change (the new secure context) have run.
    setImmediate(goawayAll);
  });
}
