/**
 * connect (registry client): the terminal client element that calls a remote registry over gRPC. Every call carries
 * the caller's token (docs/wire-compatibility.md#token-metadata, from `tokenGenerator`); Register and Unregister
 * also carry the registry `path` JSON and adopt the server's updated path from the response header
 * (docs/wire-compatibility.md#registry-path-metadata). Channels are shared per URL through a `ChannelPool`. Place
 * last in a client chain; it does not call `next`.
 */

import {
  type NetworkService,
  type NetworkServiceEndpoint,
  NetworkServiceEndpointRegistry,
  NetworkServiceRegistry,
} from "@nsm-ts/api/registry";
import type { CallContext } from "@nsm-ts/base/context";
import { ContextKey, traceMetadata } from "@nsm-ts/base/context";
import { type CallOptions, type Channel, type Client, createClient, type DialOptions, dial } from "@nsm-ts/base/grpc";
import type { PeerInfo } from "@nsm-ts/base/identity";
import { spiffeIdOf } from "@nsm-ts/base/identity";
import { Code, fail } from "@nsm-ts/base/status";
import { type TokenGenerator, tokenMetadata } from "@nsm-ts/base/token";
import type { FindResult, RegistryElement } from "../../core/index.js";
import type { RegistryEntryOf, RegistryKind } from "../../store/index.js";
import { assignPath, formatPath, PATH_METADATA_KEY, parsePath, pathKey } from "../grpcmetadata/index.js";

/** Options of `connect.newClient`. */
export interface ConnectOptions {
  /** Makes the per-RPC token; without one calls carry no token (only for tests and old servers). */
  tokenGenerator?: TokenGenerator;
}

/** How long a call without a deadline waits for a TLS channel to connect before it makes its token. */
const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;

/** One channel per registry URL, shared by every client that talks to it. */
export interface ChannelPool {
  /** The channel of `url`, dialed on first use. */
  get(url: string): Channel;
  /** Closes every channel. */
  close(): void;
}

/** Creates a channel pool dialing with `opts` (TLS, interceptors). */
export function createChannelPool(opts: DialOptions = {}): ChannelPool {
  const channels = new Map<string, Channel>();
  return {
    get(url) {
      let ch = channels.get(url);
      if (ch === undefined) {
        ch = dial(url, opts);
        channels.set(url, ch);
      }
      return ch;
    },
    close() {
      for (const ch of channels.values()) ch.close();
      channels.clear();
    },
  };
}

/**
 * The registry we call, as the token's audience: over TLS the certificate of the channel's handshake (so the
 * channel is connected first); `ctx.peer` is whoever called us and must not be the audience.
 */
async function serverPeer(ctx: CallContext, ch: Channel): Promise<PeerInfo | undefined> {
  if (!ch.secure) return undefined;
  const remaining = ctx.remainingMs();
  await ch.ready(Date.now() + (remaining === undefined ? DEFAULT_CONNECT_TIMEOUT_MS : Math.max(0, remaining)), ctx.signal);
  const certificate = ch.peerCertificate();
  if (certificate === undefined) return undefined;
  const spiffeId = spiffeIdOf(certificate);
  return spiffeId === undefined ? { certificate } : { spiffeId, certificate };
}

async function callOptions(ctx: CallContext, opts: ConnectOptions, withPath: boolean, ch: Channel): Promise<CallOptions> {
  const metadata: Record<string, string> = {};
  if (opts.tokenGenerator !== undefined) {
    Object.assign(metadata, tokenMetadata(await opts.tokenGenerator(await serverPeer(ctx, ch))));
  }
  const path = withPath ? pathKey.get(ctx) : undefined;
  if (path !== undefined) metadata[PATH_METADATA_KEY] = formatPath(path);
  traceMetadata(ctx, metadata);
  const remaining = ctx.remainingMs();
  return {
    metadata,
    signal: ctx.signal,
    ...(remaining === undefined ? {} : { timeoutMs: Math.max(0, remaining) }),
    onHeader: (h) => {
      const raw = h[PATH_METADATA_KEY];
      if (path !== undefined && raw !== undefined) assignPath(path, parsePath(raw));
    },
  };
}

// Typed clients are cheap but not free to build (one closure per method); build one per channel and service.
const clients = new WeakMap<Channel, Map<unknown, unknown>>();
function clientOf<S extends typeof NetworkServiceRegistry | typeof NetworkServiceEndpointRegistry>(service: S, ch: Channel): Client<S> {
  let m = clients.get(ch);
  if (m === undefined) {
    m = new Map();
    clients.set(ch, m);
  }
  let c = m.get(service) as Client<S> | undefined;
  if (c === undefined) {
    c = createClient(service, ch);
    m.set(service, c);
  }
  return c;
}

/**
 * The registry a call goes to, for chains whose next registry is chosen per call (dnsresolve sets it, a client
 * built with `newClient(kind, fromContext(pool))` dials it).
 */
export const urlKey = new ContextKey<string>("registry.clienturl");

/** A channel chooser for `newClient`: the channel of the URL in `urlKey`; `Internal` when no element set one. */
export function fromContext(pool: ChannelPool): (ctx: CallContext) => Channel {
  return (ctx) => {
    const url = urlKey.get(ctx);
    if (url === undefined) return fail(Code.Internal, "connect: no registry URL in the context (place dnsresolve before connect)");
    return pool.get(url);
  };
}

/** Creates the terminal client element for registry `kind` on `channel` (or a function choosing one per call). */
export function newClient<K extends RegistryKind>(
  kind: K,
  channel: Channel | ((ctx: CallContext) => Channel),
  opts: ConnectOptions = {},
): RegistryElement<RegistryEntryOf[K]> {
  const pick = typeof channel === "function" ? channel : () => channel;
  if (kind === "ns") {
    const el: RegistryElement<NetworkService> = {
      name: "connect",
      async register(ctx, entry) {
        const ch = pick(ctx);
        return clientOf(NetworkServiceRegistry, ch).register(entry, await callOptions(ctx, opts, true, ch));
      },
      async *find(ctx, query): AsyncIterable<FindResult<NetworkService>> {
        const ch = pick(ctx);
        const stream = clientOf(NetworkServiceRegistry, ch).find(
          { networkService: query.template, watch: query.watch },
          await callOptions(ctx, opts, false, ch),
        );
        for await (const r of stream) if (r.networkService) yield { entry: r.networkService, deleted: r.deleted };
      },
      async unregister(ctx, entry) {
        const ch = pick(ctx);
        await clientOf(NetworkServiceRegistry, ch).unregister(entry, await callOptions(ctx, opts, true, ch));
      },
    };
    return el as unknown as RegistryElement<RegistryEntryOf[K]>;
  }
  const el: RegistryElement<NetworkServiceEndpoint> = {
    name: "connect",
    async register(ctx, entry) {
      const ch = pick(ctx);
      return clientOf(NetworkServiceEndpointRegistry, ch).register(entry, await callOptions(ctx, opts, true, ch));
    },
    async *find(ctx, query): AsyncIterable<FindResult<NetworkServiceEndpoint>> {
      const ch = pick(ctx);
      const stream = clientOf(NetworkServiceEndpointRegistry, ch).find(
        { networkServiceEndpoint: query.template, watch: query.watch },
        await callOptions(ctx, opts, false, ch),
      );
      for await (const r of stream) if (r.networkServiceEndpoint) yield { entry: r.networkServiceEndpoint, deleted: r.deleted };
    },
    async unregister(ctx, entry) {
      const ch = pick(ctx);
      await clientOf(NetworkServiceEndpointRegistry, ch).unregister(entry, await callOptions(ctx, opts, true, ch));
    },
  };
  return el as unknown as RegistryElement<RegistryEntryOf[K]>;
}
