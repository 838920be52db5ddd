/**
 * The channel of the typed layer: `dial` a URL into a lazily connecting grpc-js channel that every client
 * created on it shares, with its interceptors, its TLS peer and a `ready` wait.
 */
import type { X509Certificate } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { Code, StatusError } from "../status/index.js";
import { DEFAULT_MAX_UNARY_CALLS } from "./call-slots.js";
import { channelCredentials, isTlsSource } from "./credentials.js";
import { canceledError } from "./errors.js";
import type { ClientInterceptor, TlsConfig } from "./types.js";
import { parseUrl } from "./url.js";

/** HTTP/2 keepalive: a ping every `timeMs`; no answer within `timeoutMs` drops the connection. */
export interface Keepalive {
  timeMs: number;
  timeoutMs: number;
}

/** Options of `dial`. */
export interface DialOptions {
  /**
   * Our client certificate and the CA that signed the server's: files, or a rotating `TlsSource` (each new
   * connection uses its latest material). Default: insecure.
   */
  tls?: TlsConfig;
  /** Middleware around every call made through this channel, first = outermost. */
  interceptors?: ClientInterceptor[];
  /**
   * HTTP/2 keepalive pings while calls are in flight: a ping every `timeMs`, and the connection is dropped (its calls
   * fail `Unavailable`, the next call connects anew) when no answer comes within `timeoutMs`. Default
   * `DEFAULT_KEEPALIVE`; `false` turns it off.
   */
  keepalive?: Keepalive | false;
  /**
   * Unary calls run at once on this channel; more wait for a slot (streams are not counted). Default
   * `DEFAULT_MAX_UNARY_CALLS`; 0 = no bound. See call-slots.ts for why.
   */
  maxUnaryCalls?: number;
  /** Raw grpc-js channel options (message sizes, …); they win over `keepalive`. */
  grpcOptions?: grpc.ChannelOptions;
}

/** A connection to one server URL, shared by every client created on it. */
export interface Channel {
  /** The URL that was dialed. */
  readonly url: string;
  /** The underlying grpc-js client (its channel does the connecting and reconnecting). */
  readonly grpcClient: grpc.Client;
  /** Interceptors applied to every call on this channel. */
  readonly interceptors: readonly ClientInterceptor[];
  /** Unary calls the typed clients run at once on this channel (more wait); undefined or 0: no bound. */
  readonly maxUnaryCalls?: number;
  /** True when the channel uses TLS (dialed with certificate files or a TLS source). */
  readonly secure: boolean;
  /**
   * The server's TLS leaf certificate from the channel's latest handshake; undefined for an insecure
   * channel or before the first connection. Tokens sent on the channel are addressed to its SPIFFE ID.
   */
  peerCertificate(): X509Certificate | undefined;
  /**
   * Resolves once the channel is connected (for TLS: the handshake is done, so `peerCertificate()` is the
   * server's), connecting if idle. Fails like a call would: `Unavailable` when the server cannot be reached,
   * `DeadlineExceeded` at the deadline, `Canceled` when `signal` aborts. With `waitForReady`, a failed connection
   * attempt does not end the wait: it lasts through the channel's reconnect backoff until READY or the deadline.
   */
  ready(deadline: Date | number, signal?: AbortSignal, opts?: { waitForReady?: boolean }): Promise<void>;
  /**
   * Present on channels dialed with a rotating `TlsSource`: the grpc-js client a new call must use, and the function
   * to call once that call is over. After a rotation new calls get a new connection (handshaking with the new
   * certificate) while calls in progress finish on the old one, which closes when the last of them is done.
   */
  lease?: () => ClientLease;
  /** Closes the connection; calls in flight fail with Unavailable/Canceled. */
  close(): void;
}

/** A grpc-js client lent to one call (see `Channel.lease`). */
export interface ClientLease {
  raw: grpc.Client;
  release(): void;
}

/**
 * grpc-js's channelz (call counters and traces per channel, socket and server, read by a channelz service) costs
 * every call a few trackers; nothing here serves channelz, so it is off on both ends (set the option to 1 in
 * `grpcOptions` to have it back).
 */
export const NO_CHANNELZ: grpc.ChannelOptions = { "grpc.enable_channelz": 0 };

/**
 * Keepalive of every dialed channel. Why on by default: when both ends of a connection are Node and both have more
 * to send at once than the socket buffers hold (on a unix socket ~200 kB, e.g. a burst of calls with their headers
 * one way and answers the other), each end's HTTP/2 session stops reading until its own write is done, and neither
 * write ever finishes: every later call on the channel waits for its deadline, forever (docs/reliability.md#http2-stall-between-two-node-peers-keepalive).
 * An unanswered ping is the only way grpc-js notices; it then drops the connection and reconnects. 60 s keeps the
 * pings within what a grpc-go server accepts by default on a connection that also carries calls (it counts a strike
 * per ping less than 5 minutes after the last one with nothing sent in between, and closes the connection on the
 * third).
 */
export const DEFAULT_KEEPALIVE = { timeMs: 60_000, timeoutMs: 20_000 } as const;

/** grpc-js options for `keepalive` (grpc-js sends them only while calls are active). */
function keepaliveOptions(k: DialOptions["keepalive"]): grpc.ChannelOptions {
  const v = k ?? DEFAULT_KEEPALIVE;
  return v === false ? {} : { "grpc.keepalive_time_ms": v.timeMs, "grpc.keepalive_timeout_ms": v.timeoutMs };
}

/**
 * True when `ch` holds a live connection to its server (grpc-js READY). After a call failed `Unavailable`, false
 * means the server itself could not be reached (refused, gone, dropped), true that it answered with that status.
 */
export function isConnected(ch: Channel): boolean {
  return ch.grpcClient.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
}

/** Dials `tcp://host:port` or `unix:///path`; connects lazily on the first call and reconnects on its own. */
export function dial(url: string, opts: DialOptions = {}): Channel {
  const grpcOptions = { ...NO_CHANNELZ, ...keepaliveOptions(opts.keepalive), ...opts.grpcOptions };
  const parsed = parseUrl(url);
  const target =
    parsed.scheme === "tcp" && (parsed.host === "" || parsed.host === "0.0.0.0") ? `127.0.0.1:${parsed.port ?? 0}` : parsed.grpcTarget;
  let peerCert: X509Certificate | undefined;
  const onServerCertificate = (c: X509Certificate): void => {
    peerCert = c;
  };
  const maxUnaryCalls = opts.maxUnaryCalls ?? DEFAULT_MAX_UNARY_CALLS;
  const tls = opts.tls;
  if (tls !== undefined && isTlsSource(tls)) {
    // Fresh credentials per connection generation: grpc-js then cannot hand the old subchannel back.
    const connect = (): grpc.Client => new grpc.Client(target, channelCredentials(tls, { onServerCertificate }), grpcOptions);
    return rotatingChannel(
      url,
      connect,
      (l) => tls.subscribe(l),
      opts.interceptors ?? [],
      () => peerCert,
      maxUnaryCalls,
    );
  }
  const creds = channelCredentials(tls, { onServerCertificate });
  const raw = new grpc.Client(target, creds, grpcOptions);
  return {
    url,
    grpcClient: raw,
    maxUnaryCalls,
    interceptors: opts.interceptors ?? [],
    secure: opts.tls !== undefined,
    peerCertificate: () => peerCert,
    ready: (deadline, signal, o) => waitReady(raw.getChannel(), url, deadline, signal, o?.waitForReady ?? false),
    close: () => raw.close(),
  };
}

/** Waits for READY, failing fast on TRANSIENT_FAILURE as a call without wait-for-ready does (unless `waitForReady`). */
function waitReady(
  ch: ReturnType<grpc.Client["getChannel"]>,
  url: string,
  deadline: Date | number,
  signal: AbortSignal | undefined,
  waitForReady: boolean,
): Promise<void> {
  const { READY, TRANSIENT_FAILURE, SHUTDOWN } = grpc.connectivityState;
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(canceledError(signal, url));
    let done = false;
    const onAbort = (): void => finish(canceledError(signal as AbortSignal, url));
    const finish = (err?: StatusError): void => {
      if (done) return;
      done = true;
      signal?.removeEventListener("abort", onAbort);
      if (err) reject(err);
      else resolve();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const check = (): void => {
      if (done) return;
      const state = ch.getConnectivityState(true);
      if (state === READY || state === SHUTDOWN || (state === TRANSIENT_FAILURE && !waitForReady)) {
        finish(
          state === READY
            ? undefined
            : new StatusError(Code.Unavailable, `${url}: ${state === SHUTDOWN ? "channel closed" : "connection failed"}`),
        );
        return;
      }
      ch.watchConnectivityState(state, deadline, (err) => {
        if (err) finish(new StatusError(Code.DeadlineExceeded, `${url}: not connected before the deadline`));
        else check();
      });
    };
    check();
  });
}

/** One connection generation of a rotating channel and the calls still using it. */
interface Generation {
  raw: grpc.Client;
  calls: number;
}

/** A channel whose connection is replaced for new calls whenever the TLS source rotates (see `Channel.lease`). */
function rotatingChannel(
  url: string,
  connect: () => grpc.Client,
  subscribe: (listener: () => void) => () => void,
  interceptors: readonly ClientInterceptor[],
  peerCertificate: () => X509Certificate | undefined,
  maxUnaryCalls: number,
): Channel {
  let current: Generation = { raw: connect(), calls: 0 };
  const retired = new Set<Generation>();
  let closed = false;
  const unsubscribe = subscribe(() => {
    if (closed) return;
    const old = current;
    current = { raw: connect(), calls: 0 };
    if (old.calls === 0) old.raw.close();
    else retired.add(old);
  });
  return {
    url,
    get grpcClient() {
      return current.raw;
    },
    maxUnaryCalls,
    interceptors,
    secure: true,
    peerCertificate,
    ready: (deadline, signal, o) => waitReady(current.raw.getChannel(), url, deadline, signal, o?.waitForReady ?? false),
    lease() {
      const g = current;
      g.calls++;
      let released = false;
      return {
        raw: g.raw,
        release: () => {
          if (released) return;
          released = true;
          if (--g.calls === 0 && retired.delete(g)) g.raw.close();
        },
      };
    },
    close() {
      closed = true;
      unsubscribe();
      current.raw.close();
      for (const g of retired) g.raw.close();
      retired.clear();
    },
  };
}
