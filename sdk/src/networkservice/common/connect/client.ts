/**
 * connect: the last element of every client chain. It sends the Request or Close to the next hop over gRPC,
 * at the URL that `clienturl` (or discover/roundrobin) put in the context, with the caller's token in the
 * `nsm-client-token` metadata and the context's deadline and signal. One channel per URL is shared by all
 * connections to it (ChannelPool); a connection keeps its URL in client metadata so Close reaches the same
 * hop.
 *
 * Over TLS the per-RPC token is addressed to the server (`aud` = the SPIFFE ID of the certificate the channel's
 * handshake presented, docs/wire-compatibility.md#token-format), so connect waits for the channel to be connected
 * before it makes the token; after each call it reports that certificate to the client `authorize` through the
 * `serverPeerKey` slot, which verifies the next hop's token against it.
 *
 * Reads: `clienturl.urlKey`, `authorize.serverPeerKey`. Writes: client metadata (URL), the server-peer slot.
 */

import { clone } from "@bufbuild/protobuf";
import { type Connection, ConnectionSchema, NetworkService, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import type { CallContext } from "@nsm-ts/base/context";
import { MetaKey, traceKey, traceMetadata } from "@nsm-ts/base/context";
import { ChannelPool } from "@nsm-ts/base/dialer";
import { type CallOptions, type Channel, createClient, isConnected } from "@nsm-ts/base/grpc";
import type { PeerInfo } from "@nsm-ts/base/identity";
import { spiffeIdOf } from "@nsm-ts/base/identity";
import { Code, fail, isStatusError, StatusError } from "@nsm-ts/base/status";
import { type TokenGenerator, tokenMetadata } from "@nsm-ts/base/token";
import type { NetworkServiceElement } from "../../core/types.js";
import { serverPeerKey } from "../authorize/index.js";
import { clientUrlOf } from "../clienturl/index.js";
import { failedAtMetadata } from "../discover/index.js";

const urlMeta = new MetaKey<string>("connect.url");

/** Errors of Requests that never reached the next hop (kept in process: not a wire marker). */
const unreachable = new WeakSet<object>();

/**
 * True when `err` (from connect's Request) says the next hop could not be reached at all — the call failed
 * `Unavailable` while its channel had no connection — as opposed to the next hop answering with an error.
 */
export function isNextHopUnreachable(err: unknown): boolean {
  return typeof err === "object" && err !== null && unreachable.has(err);
}

/** Options of connect. */
export interface ConnectOptions {
  /** Generates the token sent as `nsm-client-token`; without it no token metadata is sent. */
  tokenGenerator?: TokenGenerator;
  /** Channel pool; default a pool of this element (insecure). Pass one with TLS files for mTLS. */
  pool?: ChannelPool;
  /** Timeout for a call when the context has no deadline; default 15 000 ms. */
  defaultTimeoutMs?: number;
}

/** The connect element plus a way to close its channels. */
export interface ConnectClient extends NetworkServiceElement {
  /** Closes every channel of the element's own pool. */
  dispose(): void;
}

/** Creates the connect element (terminal: it does not call `next`). */
export function newClient(opts: ConnectOptions = {}): ConnectClient {
  const pool = opts.pool ?? new ChannelPool();
  const ownPool = !opts.pool;
  const clients = new WeakMap<object, ReturnType<typeof createClient<typeof NetworkService>>>();
  const clientFor = (url: string) => {
    const ch = pool.acquire(url);
    let c = clients.get(ch);
    if (!c) {
      c = createClient(NetworkService, ch);
      clients.set(ch, c);
    }
    return { ch, c };
  };
  const callOptions = async (ctx: CallContext, ch: Channel): Promise<CallOptions> => {
    const o: CallOptions = { signal: ctx.signal };
    const remaining = ctx.remainingMs();
    o.timeoutMs = remaining !== undefined ? Math.max(1, remaining) : (opts.defaultTimeoutMs ?? 15_000);
    if (opts.tokenGenerator) {
      const peer = await serverPeer(ch, Date.now() + o.timeoutMs, ctx.signal);
      o.metadata = tokenMetadata(await opts.tokenGenerator(peer));
    }
    // With tracing on, the next hop's call becomes a child of the element span that called connect.
    if (traceKey.get(ctx)) o.metadata = traceMetadata(ctx, o.metadata ?? {});
    return o;
  };
  return {
    name: "connect",
    dispose: () => {
      if (ownPool) pool.closeAll();
    },
    async request(ctx, req) {
      const url =
        clientUrlOf(ctx)?.href ??
        ctx.metadata.client.get(urlMeta) ??
        fail(Code.Internal, "connect: no next-hop URL in the context (clienturl missing)");
      const previous = ctx.metadata.client.get(urlMeta);
      const { ch, c: client } = clientFor(url);
      try {
        const conn = await client.request(clone(NetworkServiceRequestSchema, req), await callOptions(ctx, ch));
        reportPeer(ctx, ch);
        if (previous && previous !== url) pool.release(previous);
        if (previous === url) pool.release(url); // already held once for this connection
        ctx.metadata.client.set(urlMeta, url);
        return conn;
      } catch (err) {
        // Read before the release, which may close the channel.
        const notReached = isStatusError(err, Code.Unavailable) && !isConnected(ch);
        pool.release(url);
        // The registry- or forwarder-failure mark travels back with the next hop's error, so this hop does not blame the next hop.
        const wrapped =
          err instanceof StatusError
            ? new StatusError(err.code, `connect: ${url}: ${err.message}`, { cause: err, metadata: failedAtMetadata(err) })
            : err;
        if (notReached && wrapped instanceof StatusError) unreachable.add(wrapped);
        throw wrapped;
      }
    },
    async close(ctx, conn: Connection) {
      const url = ctx.metadata.client.get(urlMeta) ?? clientUrlOf(ctx)?.href;
      if (!url) return; // never connected
      const { ch, c: client } = clientFor(url);
      try {
        await client.close(clone(ConnectionSchema, conn), await callOptions(ctx, ch));
        reportPeer(ctx, ch);
      } finally {
        pool.release(url); // this call's acquire
        if (ctx.metadata.client.delete(urlMeta) !== undefined) pool.release(url); // the connection's hold
      }
    },
  };
}

/** The server of a TLS channel as the token generator wants it, once connected; undefined when insecure. */
async function serverPeer(ch: Channel, deadline: number, signal: AbortSignal): Promise<PeerInfo | undefined> {
  if (!ch.secure) return undefined;
  await ch.ready(deadline, signal);
  return peerOf(ch);
}

function peerOf(ch: Channel): PeerInfo | undefined {
  const certificate = ch.peerCertificate();
  if (!certificate) return undefined;
  const spiffeId = spiffeIdOf(certificate);
  return spiffeId === undefined ? { certificate } : { spiffeId, certificate };
}

/** Tells the client `authorize` (when it is in the chain) who answered the call. */
function reportPeer(ctx: CallContext, ch: Channel): void {
  const slot = serverPeerKey.get(ctx);
  const peer = peerOf(ch);
  if (slot && peer) slot.peer = peer;
}
