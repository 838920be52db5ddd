/**
 * The standard client chain (what an NSC, or the client half of a passthrough element, runs): [retry] →
 * updatepath → begin → metadata → [refresh] → clienturl → [heal] → …additional → updatetoken → authorize →
 * trimpath → connect, behind a small facade that copies the caller's request and builds the call context.
 * See README.md for why the elements sit where they do.
 */
import { randomUUID } from "node:crypto";
import { clone, create, isMessage, type MessageInitShape } from "@bufbuild/protobuf";
import {
  type Connection,
  ConnectionSchema,
  type MechanismSchema,
  type NetworkServiceRequest,
  NetworkServiceRequestSchema,
} from "@nsm-ts/api/networkservice";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { CallContext, inSpan } from "@nsm-ts/base/context";
import { ChannelPool } from "@nsm-ts/base/dialer";
import type { ClientInterceptor, TlsConfig } from "@nsm-ts/base/grpc";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import type { PathPolicyInput, Policy } from "@nsm-ts/base/policy";
import type { TokenGenerator } from "@nsm-ts/base/token";
import { ROOT_CONTEXT, type Tracer } from "@opentelemetry/api";
import * as authorize from "../common/authorize/index.js";
import * as begin from "../common/begin/index.js";
import * as clienturl from "../common/clienturl/index.js";
import * as connect from "../common/connect/index.js";
import * as heal from "../common/heal/index.js";
import * as metadata from "../common/metadata/index.js";
import * as refresh from "../common/refresh/index.js";
import * as retry from "../common/retry/index.js";
import * as trimpath from "../common/trimpath/index.js";
import * as updatepath from "../common/updatepath/index.js";
import * as updatetoken from "../common/updatetoken/index.js";
import { chain, handler } from "../core/chain.js";
import type { NetworkServiceElement } from "../core/types.js";

/** Heal options the client chain lets callers set (the pool and token come from the client). */
export type ClientHealOptions = Omit<heal.HealOptions, "pool" | "tokenGenerator">;

/** Options of `client`. */
export interface ClientOptions {
  /** The client's name: its path segment name. */
  name: string;
  /** The next hop (`unix:///path` or `tcp://host:port`): normally the local nsmgr, or an endpoint directly. */
  connectTo: URL | string;
  /** Makes our path-segment and per-RPC tokens. */
  tokenGenerator: TokenGenerator;
  /** Path policies of the client `authorize`; default the client set (tokens valid, next token signed, unexpired, chained). */
  policies?: readonly Policy<PathPolicyInput>[];
  /** The insecure dev mode (no certificates): signatures and audiences are not enforced. Default false. */
  insecure?: boolean;
  /** Elements between heal and updatetoken (mechanism offers, client-side IPAM, …); default none. */
  additional?: NetworkServiceElement[];
  /** Refresh connections before their tokens expire (`true`, the default, or its options); `false` turns it off. */
  refresh?: boolean | refresh.RefreshOptions;
  /**
   * Watch the next hop and re-establish lost connections (`true`, the default, or its options); `false` turns
   * it off. A next hop that does not serve MonitorConnection simply leaves connections unwatched.
   */
  heal?: boolean | ClientHealOptions;
  /** Retry transiently failing Requests until their deadline (`true`, the default, or its options); `false` turns it off. */
  retry?: boolean | retry.RetryOptions;
  /** Mechanisms offered when a request carries no `mechanism_preferences`; default none. */
  mechanismPreferences?: MessageInitShape<typeof MechanismSchema>[];
  /** Channel pool for the next hop (connect and heal share it); default an own pool, closed by `dispose`. */
  pool?: ChannelPool;
  /** mTLS to the next hop (certificate files or a rotating TLS source), used by the own pool; default insecure transport. */
  tls?: TlsConfig;
  /** Interceptors of the own pool's channels (metrics, tracing); default none. */
  interceptors?: ClientInterceptor[];
  /**
   * Tracer for the client's side of a trace: each Request and Close of the facade is a root span
   * (`<name>.Request`/`.Close`) with a span per chain element, and the next hop's call becomes its child.
   * Default none (no spans, no cost).
   */
  tracer?: Tracer;
  /** Timeout of a Request or Close without `timeoutMs`; default 15 000 ms (upstream's request timeout). */
  requestTimeoutMs?: number;
  /** Clock of the chain (refresh, heal, retry, token expiry checks); default the real clock. */
  clock?: Clock;
  /** Logger of the chain; default silent. */
  log?: Logger;
}

/** Per-call options of the client facade. */
export interface ClientCallOptions {
  /** Cancels the call. */
  signal?: AbortSignal;
  /** Deadline of the call from now, on the client's clock; default `requestTimeoutMs`. */
  timeoutMs?: number;
}

/** A standard client: Request and Close connections through its chain. */
export interface NsmClient {
  /** The chain as one element (e.g. the tail of a passthrough endpoint's chain). */
  readonly element: NetworkServiceElement;
  /**
   * Requests (or refreshes, when the connection was returned before) a connection. The request is copied;
   * an empty `connection.id` gets a fresh UUID so retries keep one identity.
   */
  request(req: NetworkServiceRequest | MessageInitShape<typeof NetworkServiceRequestSchema>, opts?: ClientCallOptions): Promise<Connection>;
  /** Closes a connection this client returned (best effort along the path). */
  close(conn: Connection, opts?: ClientCallOptions): Promise<void>;
  /**
   * Heal state of every connection this client returned and has not closed (`CONNECTED`, or `HEALING` with the
   * attempt number, trigger, reselect, last error and next attempt time), or of one connection (undefined when
   * the client does not hold it). With heal off, or while a connection is not watched, it is `CONNECTED`.
   * Every change is also reported to `heal.onStatus`, ending with `CLOSED`.
   */
  status(): heal.HealStatus[];
  status(connId: string): heal.HealStatus | undefined;
  /** Closes the connections still open, ends heal watches and closes the client's own channels. */
  dispose(): Promise<void>;
}

/**
 * grpc-js waits 1 s (growing to 2 min) before reconnecting to a hop that went away; heal wants to reach a
 * restarted next hop within a fraction of a second, so the client's own pool reconnects sooner.
 */
const FAST_RECONNECT = { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 1000 };

function optionsOf<T extends object>(v: boolean | T | undefined): T | undefined {
  if (v === false) return undefined;
  return v === true || v === undefined ? ({} as T) : v;
}

/** How long the client keeps its channel to the nsmgr without a connection on it (real-clock, unref'd timer). */
const CHANNEL_IDLE_MS = 30_000;

/** Builds the standard client chain and its facade. */
export function client(opts: ClientOptions): NsmClient {
  const clock = opts.clock ?? realClock;
  const log = opts.log ?? silentLogger;
  const ownPool = opts.pool
    ? undefined
    : new ChannelPool(
        {
          grpcOptions: FAST_RECONNECT,
          ...(opts.tls ? { tls: opts.tls } : {}),
          ...(opts.interceptors ? { interceptors: opts.interceptors } : {}),
        },
        // A client whose connections come and go one at a time keeps its HTTP/2 connection to the nsmgr.
        { idleMs: CHANNEL_IDLE_MS },
      );
  const pool = (opts.pool ?? ownPool) as ChannelPool;
  const auth: authorize.AuthorizeOptions = { insecure: opts.insecure ?? false };
  if (opts.policies) auth.policies = opts.policies;

  const retryOpts = optionsOf(opts.retry);
  const refreshOpts = optionsOf(opts.refresh);
  const healOpts = optionsOf(opts.heal);
  const healer = healOpts ? heal.newClient({ clock, log, ...healOpts, pool, tokenGenerator: opts.tokenGenerator }) : undefined;
  const connector = connect.newClient({ tokenGenerator: opts.tokenGenerator, pool });

  const elements: NetworkServiceElement[] = [];
  if (retryOpts) elements.push(retry.newClient(retryOpts));
  elements.push(updatepath.newClient(opts.name), begin.newClient(), metadata.newClient());
  if (refreshOpts) elements.push(refresh.newClient(refreshOpts));
  elements.push(clienturl.newClient(opts.connectTo));
  if (healer) elements.push(healer);
  elements.push(
    ...(opts.additional ?? []),
    updatetoken.newClient(opts.tokenGenerator),
    authorize.newClient(auth),
    trimpath.newClient(),
    connector,
  );
  const element = chain(...elements);
  const h = handler(element);
  const open = new Map<string, Connection>();
  const defaultTimeoutMs = opts.requestTimeoutMs ?? 15_000;

  const contextFor = (o: ClientCallOptions = {}): CallContext =>
    CallContext.create({
      clock,
      log,
      deadline: clock.now() + (o.timeoutMs ?? defaultTimeoutMs),
      ...(o.signal ? { signal: o.signal } : {}),
    });

  // With a tracer, the facade's call is the root of the trace: the chain's element spans and the next hop nest in it.
  const root = opts.tracer === undefined ? undefined : { tracer: opts.tracer, context: ROOT_CONTEXT };
  const traced = <R>(op: string, o: ClientCallOptions | undefined, fn: (ctx: CallContext) => Promise<R>): Promise<R> =>
    root === undefined ? fn(contextFor(o)) : inSpan(contextFor(o), root, `${opts.name}.${op}`, fn);

  const close = async (conn: Connection, o?: ClientCallOptions): Promise<void> => {
    try {
      await traced("Close", o, (ctx) => h.close(ctx, clone(ConnectionSchema, conn)));
    } finally {
      open.delete(conn.id);
    }
  };

  const connected = (connId: string): heal.HealStatus => ({ connId, state: "CONNECTED", attempt: 0 });
  function status(): heal.HealStatus[];
  function status(connId: string): heal.HealStatus | undefined;
  function status(connId?: string): heal.HealStatus[] | heal.HealStatus | undefined {
    if (connId !== undefined) return open.has(connId) ? (healer?.status(connId) ?? connected(connId)) : undefined;
    return [...open.keys()].map((id) => healer?.status(id) ?? connected(id));
  }

  return {
    element,
    status,
    async request(init, o) {
      const req = isMessage(init, NetworkServiceRequestSchema)
        ? clone(NetworkServiceRequestSchema, init)
        : create(NetworkServiceRequestSchema, init);
      req.connection ??= create(ConnectionSchema);
      if (!req.connection.id) req.connection.id = randomUUID();
      if (req.mechanismPreferences.length === 0 && opts.mechanismPreferences) {
        req.mechanismPreferences = create(NetworkServiceRequestSchema, {
          mechanismPreferences: opts.mechanismPreferences,
        }).mechanismPreferences;
      }
      const conn = await traced("Request", o, (ctx) => h.request(ctx, req));
      open.set(conn.id, clone(ConnectionSchema, conn));
      return conn;
    },
    close,
    async dispose() {
      await Promise.allSettled([...open.values()].map((c) => close(c)));
      healer?.dispose();
      connector.dispose();
      ownPool?.closeAll();
    },
  };
}
