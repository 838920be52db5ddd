/**
 * The client side of the typed layer: `dial` a URL into a lazily connecting channel, `createClient` a typed
 * client of a protobuf-es service on it. Every call runs through the channel's interceptors and ends with a
 * StatusError on failure; response streams are async iterables that cancel the call when left early.
 */
import type { X509Certificate } from "node:crypto";
import { create, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { AsyncQueue } from "../queue/index.js";
import { Code, StatusError, toStatusError } from "../status/index.js";
import { compose } from "./compose.js";
import { channelCredentials } from "./credentials.js";
import { deserializerFor, methodPath, serializerFor } from "./definition.js";
import { canceledError, fromServiceError } from "./errors.js";
import { firstValues, toGrpcMetadata } from "./metadata.js";
import type { CallOptions, Client, ClientCall, ClientCallFn, ClientInterceptor, TlsFiles } from "./types.js";
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
   * `DeadlineExceeded` at the deadline, `Canceled` when `signal` aborts.
   */
  ready(deadline: Date | number, signal?: AbortSignal): Promise<void>;
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
    ready: (deadline, signal) => waitReady(raw.getChannel(), url, deadline, signal),
    close: () => raw.close(),
  };
}

/** Waits for READY, failing fast on TRANSIENT_FAILURE as a call without wait-for-ready does. */
function waitReady(
  ch: ReturnType<grpc.Client["getChannel"]>,
  url: string,
  deadline: Date | number,
  signal: AbortSignal | undefined,
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
      if (state === READY || state === TRANSIENT_FAILURE || state === SHUTDOWN) {
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

/** A typed client of `service` on `channel`, one method per RPC keyed by local name. */
export function createClient<S extends DescService>(service: S, channel: Channel): Client<S> {
  const client: Record<string, unknown> = {};
  for (const method of service.methods) {
    const fn = compose(channel.interceptors, transport(channel.grpcClient, method));
    client[method.localName] = clientMethod(method, fn);
  }
  return client as Client<S>;
}

const neverAborted = new AbortController().signal;
const noop = (): void => undefined;

/** The effective deadline of a call: the earlier of `deadline` and now + `timeoutMs`. */
function deadlineOf(opts: CallOptions): Date | undefined {
  let t = opts.deadline === undefined ? Infinity : typeof opts.deadline === "number" ? opts.deadline : opts.deadline.getTime();
  if (opts.timeoutMs !== undefined) t = Math.min(t, Date.now() + opts.timeoutMs);
  return Number.isFinite(t) ? new Date(t) : undefined;
}

function makeCall(
  method: DescMethod,
  opts: CallOptions,
  signal: AbortSignal,
  request: Message | undefined,
  requests: AsyncIterable<Message> | undefined,
  onMessage: (m: Message) => void | Promise<void>,
): ClientCall {
  return {
    method,
    path: methodPath(method),
    metadata: { ...opts.metadata },
    signal,
    deadline: deadlineOf(opts),
    request,
    requests,
    onHeader: opts.onHeader ?? noop,
    onMessage,
  };
}

async function* initsToMessages(schema: DescMethod["input"], inits: AsyncIterable<unknown>): AsyncGenerator<Message> {
  for await (const init of inits) yield create(schema, init as Message);
}

/** Links a caller's signal to a per-call controller; returns the unlink function. */
function link(outer: AbortSignal | undefined, ac: AbortController): () => void {
  if (!outer) return noop;
  if (outer.aborted) {
    ac.abort(outer.reason);
    return noop;
  }
  const onAbort = (): void => ac.abort(outer.reason);
  outer.addEventListener("abort", onAbort, { once: true });
  return () => outer.removeEventListener("abort", onAbort);
}

/** Runs `start` so that a synchronous throw (an interceptor, a bad message init) becomes a rejection. */
function invoke(start: () => Promise<Message | undefined>): Promise<Message | undefined> {
  try {
    return start();
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Builds the public function of one method around its composed call function. */
function clientMethod(method: DescMethod, fn: ClientCallFn): unknown {
  const input = method.input;
  const settle = (p: Promise<Message | undefined>): Promise<Message> =>
    p.then(
      (m) => m ?? fail(method, "no response message"),
      (err: unknown) => Promise.reject(toStatusError(err, methodPath(method))),
    );
  switch (method.methodKind) {
    case "unary":
      return (req: unknown, opts: CallOptions = {}) =>
        settle(invoke(() => fn(makeCall(method, opts, opts.signal ?? neverAborted, create(input, req as Message), undefined, noop))));
    case "client_streaming":
      return (reqs: AsyncIterable<unknown>, opts: CallOptions = {}) =>
        settle(invoke(() => fn(makeCall(method, opts, opts.signal ?? neverAborted, undefined, initsToMessages(input, reqs), noop))));
    case "server_streaming":
      return (req: unknown, opts: CallOptions = {}) => streamCall(method, fn, opts, create(input, req as Message), undefined);
    case "bidi_streaming":
      return (reqs: AsyncIterable<unknown>, opts: CallOptions = {}) =>
        streamCall(method, fn, opts, undefined, initsToMessages(input, reqs));
  }
}

function fail(method: DescMethod, what: string): never {
  throw new StatusError(Code.Internal, `${methodPath(method)}: ${what}`);
}

/**
 * A response stream as an async iterable: the call starts when iteration starts, ends cleanly on OK, throws
 * StatusError otherwise, and is cancelled when the consumer leaves early (`break`, `return()`) or the
 * signal aborts. The queue itself is the iterator, so a message costs no extra generator hop.
 */
function streamCall(
  method: DescMethod,
  fn: ClientCallFn,
  opts: CallOptions,
  request: Message | undefined,
  requests: AsyncIterable<Message> | undefined,
): AsyncIterable<Message> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<Message> {
      const ac = new AbortController();
      const unlink = link(opts.signal, ac);
      const path = methodPath(method);
      const q = new AsyncQueue<Message>({
        onReturn: () => ac.abort(new StatusError(Code.Canceled, `${path}: stream left by the caller`)),
      });
      const call = makeCall(method, opts, ac.signal, request, requests, (m) => (q.push(m) ? undefined : q.waitForSpace()));
      invoke(() => fn(call)).then(
        () => {
          unlink();
          q.end();
        },
        (err: unknown) => {
          unlink();
          q.end(toStatusError(err, path));
        },
      );
      return q;
    },
  };
}

/** The base call function for one method: grpc-js does the call, we translate signal, metadata and status. */
function transport(raw: grpc.Client, method: DescMethod): ClientCallFn {
  const path = methodPath(method);
  const ser = serializerFor(method.input);
  const de = deserializerFor(method.output);
  const callOptions = (call: ClientCall): grpc.CallOptions => (call.deadline ? { deadline: call.deadline } : {});

  switch (method.methodKind) {
    case "unary":
      return (call) =>
        new Promise((resolve, reject) => {
          if (call.signal.aborted) return reject(canceledError(call.signal, path));
          let onAbort: (() => void) | undefined;
          const g = raw.makeUnaryRequest(
            path,
            ser,
            de,
            call.request as Message,
            toGrpcMetadata(call.metadata),
            callOptions(call),
            (err, res) => {
              if (onAbort) call.signal.removeEventListener("abort", onAbort);
              if (err) reject(fromServiceError(err));
              else resolve(res);
            },
          );
          g.on("metadata", (md: grpc.Metadata) => call.onHeader(firstValues(md)));
          if (call.signal !== neverAborted) {
            onAbort = () => g.cancel();
            call.signal.addEventListener("abort", onAbort, { once: true });
          }
        });
    case "client_streaming":
      return (call) =>
        new Promise((resolve, reject) => {
          if (call.signal.aborted) return reject(canceledError(call.signal, path));
          let finish = noop;
          const g = raw.makeClientStreamRequest(path, ser, de, toGrpcMetadata(call.metadata), callOptions(call), (err, res) => {
            finish();
            if (err) reject(fromServiceError(err));
            else resolve(res);
          });
          g.on("metadata", (md: grpc.Metadata) => call.onHeader(firstValues(md)));
          const onAbort = (): void => g.cancel();
          call.signal.addEventListener("abort", onAbort, { once: true });
          const stopPump = pumpRequests(g, call.requests, (err) => {
            reject(err);
            g.cancel();
          });
          finish = () => {
            call.signal.removeEventListener("abort", onAbort);
            stopPump();
          };
        });
    case "server_streaming":
    case "bidi_streaming":
      return (call) =>
        new Promise((resolve, reject) => {
          if (call.signal.aborted) return reject(canceledError(call.signal, path));
          const md = toGrpcMetadata(call.metadata);
          const g: grpc.ClientReadableStream<Message> | grpc.ClientDuplexStream<Message, Message> =
            method.methodKind === "server_streaming"
              ? raw.makeServerStreamRequest(path, ser, de, call.request as Message, md, callOptions(call))
              : raw.makeBidiStreamRequest(path, ser, de, md, callOptions(call));
          let stopPump = noop;
          let failure: StatusError | undefined;
          const onAbort = (): void => g.cancel();
          call.signal.addEventListener("abort", onAbort, { once: true });
          readResponses(
            g,
            call,
            (err) => {
              call.signal.removeEventListener("abort", onAbort);
              stopPump();
              const e = failure ?? err;
              if (e) reject(e);
              else resolve(undefined);
            },
            (err) => {
              failure ??= err;
              g.cancel();
            },
          );
          if (method.methodKind === "bidi_streaming") {
            stopPump = pumpRequests(g as grpc.ClientDuplexStream<Message, Message>, call.requests, (err) => {
              failure ??= err;
              g.cancel();
            });
          }
        });
  }
}

/**
 * Delivers a response stream to `call.onMessage`, pausing grpc-js while the consumer is busy, and reports
 * the outcome once both the status and the end of the data have been seen (no message is lost before an
 * error status).
 */
function readResponses(
  g: grpc.ClientReadableStream<Message> | grpc.ClientDuplexStream<Message, Message>,
  call: ClientCall,
  done: (err?: StatusError) => void,
  abort: (err: StatusError) => void,
): void {
  let status: grpc.StatusObject | undefined;
  let ended = false;
  let finished = false;
  const settle = (): void => {
    if (finished || !status) return;
    // After a cancel the buffered messages are unwanted; otherwise wait until they were all delivered.
    if (!ended && !(status.code !== grpc.status.OK && call.signal.aborted)) return;
    finished = true;
    done(status.code === grpc.status.OK ? undefined : fromServiceError(status));
  };
  g.on("metadata", (md: grpc.Metadata) => call.onHeader(firstValues(md)));
  g.on("data", (m: Message) => {
    let p: void | Promise<void>;
    try {
      p = call.onMessage(m);
    } catch (err) {
      abort(toStatusError(err, "grpc: response consumer"));
      return;
    }
    if (p) {
      g.pause();
      p.then(
        () => g.resume(),
        (err: unknown) => abort(toStatusError(err, "grpc: response consumer")),
      );
    }
  });
  // The outcome is read from 'status'; this listener only keeps 'error' from being thrown.
  g.on("error", noop);
  g.on("end", () => {
    ended = true;
    settle();
  });
  g.on("status", (s: grpc.StatusObject) => {
    status = s;
    settle();
  });
}

/**
 * Writes a request stream into a grpc-js writable, awaiting 'drain' when it is full, then half-closes.
 * Returns a stop function that ends the pumping when the call is over.
 */
function pumpRequests(
  g: grpc.ClientWritableStream<Message> | grpc.ClientDuplexStream<Message, Message>,
  requests: AsyncIterable<Message> | undefined,
  onError: (err: StatusError) => void,
): () => void {
  let stopped = false;
  let completed = false;
  let wake = noop;
  const it = (requests ?? (async function* () {})())[Symbol.asyncIterator]();
  void (async () => {
    try {
      for (;;) {
        const r = await it.next();
        if (r.done) completed = true;
        if (r.done || stopped) break;
        if (!g.write(r.value)) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            g.once("drain", resolve);
          });
          g.removeListener("drain", wake);
        }
        if (stopped) break;
      }
      if (!stopped) g.end();
    } catch (err) {
      completed = true;
      if (!stopped) onError(toStatusError(err, "grpc: request stream"));
    }
  })();
  return () => {
    if (stopped) return;
    stopped = true;
    wake();
    // Tell the request producer we are done; an async generator busy in next() runs it right after.
    if (!completed) Promise.resolve(it.return?.()).catch(noop);
  };
}
