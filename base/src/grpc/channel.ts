/**
 * The channel of the typed layer: `dial` a URL into a lazily connecting grpc-js channel that every client
 * created on it shares, with its interceptors, its TLS peer and a `ready` wait.
 */
import type { X509Certificate } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { Code, StatusError } from "../status/index.js";
import { channelCredentials } from "./credentials.js";
import { canceledError } from "./errors.js";
import type { ClientInterceptor, TlsFiles } from "./types.js";
import { parseUrl } from "./url.js";

/** Options of `dial`. */
export interface DialOptions {
  /** Certificate files: our client certificate and the CA that signed the server's. Default: insecure. */
  tls?: TlsFiles;
  /** Middleware around every call made through this channel, first = outermost. */
  interceptors?: ClientInterceptor[];
  /** Raw grpc-js channel options (keepalive, message sizes). */
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
  /** True when the channel uses TLS (dialed with certificate files). */
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
  /** Closes the connection; calls in flight fail with Unavailable/Canceled. */
  close(): void;
}

/** Dials `tcp://host:port` or `unix:///path`; connects lazily on the first call and reconnects on its own. */
export function dial(url: string, opts: DialOptions = {}): Channel {
  const parsed = parseUrl(url);
  const target =
    parsed.scheme === "tcp" && (parsed.host === "" || parsed.host === "0.0.0.0") ? `127.0.0.1:${parsed.port ?? 0}` : parsed.grpcTarget;
  let peerCert: X509Certificate | undefined;
  const creds = channelCredentials(opts.tls, { onServerCertificate: (c) => (peerCert = c) });
  const raw = new grpc.Client(target, creds, opts.grpcOptions);
  return {
    url,
    grpcClient: raw,
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
