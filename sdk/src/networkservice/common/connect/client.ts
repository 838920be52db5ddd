/**
 * connect: the last element of every client chain. It sends the Request or Close to the next hop over gRPC,
 * at the URL that `clienturl` (or discover/roundrobin) put in the context, with the caller's token in the
 * `nsm-client-token` metadata and the context's deadline and signal. One channel per URL is shared by all
 * connections to it (ChannelPool); a connection keeps its URL in client metadata so Close reaches the same
 * hop. Reads: `clienturl.urlKey`. Writes: client metadata (URL).
 */
import { type Connection, ConnectionSchema, NetworkService, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { clone } from "@bufbuild/protobuf";
import type { NetworkServiceElement } from "../../core/types.js";
import type { CallContext } from "../../core/context.js";
import { MetaKey } from "../../core/metadata.js";
import { clientUrlOf } from "../clienturl/index.js";
import { ChannelPool } from "../../../tools/dialer/index.js";
import { createClient, type CallOptions } from "../../../tools/grpc/index.js";
import { type TokenGenerator, tokenMetadata } from "../../../tools/token/index.js";
import { Code, fail, StatusError } from "../../../tools/status/index.js";

const urlMeta = new MetaKey<string>("connect.url");

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
    return c;
  };
  const callOptions = async (ctx: CallContext): Promise<CallOptions> => {
    const o: CallOptions = { signal: ctx.signal };
    const remaining = ctx.remainingMs();
    o.timeoutMs = remaining !== undefined ? Math.max(1, remaining) : (opts.defaultTimeoutMs ?? 15_000);
    if (opts.tokenGenerator) o.metadata = tokenMetadata(await opts.tokenGenerator());
    return o;
  };
  return {
    name: "connect",
    dispose: () => {
      if (ownPool) pool.closeAll();
    },
    async request(ctx, req) {
      const url = clientUrlOf(ctx)?.href ?? ctx.metadata.client.get(urlMeta) ?? fail(Code.Internal, "connect: no next-hop URL in the context (clienturl missing)");
      const previous = ctx.metadata.client.get(urlMeta);
      const client = clientFor(url);
      try {
        const conn = await client.request(clone(NetworkServiceRequestSchema, req), await callOptions(ctx));
        if (previous && previous !== url) pool.release(previous);
        if (previous === url) pool.release(url); // already held once for this connection
        ctx.metadata.client.set(urlMeta, url);
        return conn;
      } catch (err) {
        pool.release(url);
        throw err instanceof StatusError ? new StatusError(err.code, `connect: ${url}: ${err.message}`, { cause: err }) : err;
      }
    },
    async close(ctx, conn: Connection) {
      const url = ctx.metadata.client.get(urlMeta) ?? clientUrlOf(ctx)?.href;
      if (!url) return; // never connected
      const client = clientFor(url);
      try {
        await client.close(clone(ConnectionSchema, conn), await callOptions(ctx));
      } finally {
        pool.release(url); // this call's acquire
        if (ctx.metadata.client.delete(urlMeta) !== undefined) pool.release(url); // the connection's hold
      }
    },
  };
}
