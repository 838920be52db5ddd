/**
 * The public types of the typed gRPC layer: handler and client shapes mapped from protobuf-es service
 * descriptors, per-call options and context, and the interceptor (middleware) contract.
 */
import type { X509Certificate } from "node:crypto";
import type { DescMessage, DescMethod, DescService, Message, MessageInitShape, MessageShape } from "@bufbuild/protobuf";

/** Client-side options of one call. */
export interface CallOptions {
  /** Aborting cancels the call; the caller then sees `Canceled`. */
  signal?: AbortSignal;
  /** Absolute deadline (Date or epoch ms), propagated to the server as `grpc-timeout`. */
  deadline?: Date | number;
  /** Relative alternative to `deadline`; the earlier of both wins. */
  timeoutMs?: number;
  /** Request metadata. */
  metadata?: Record<string, string>;
  /** Receives the response headers once they arrive. */
  onHeader?: (header: Record<string, string>) => void;
}

/** What a server handler knows about its call. */
export interface ServerCallContext {
  /** Full method path, e.g. "/networkservice.NetworkService/Request". */
  method: string;
  /** Aborted when the client cancels, the deadline passes or the server closes. */
  signal: AbortSignal;
  /** The deadline the client sent, if any (the timeout element needs it). */
  deadline: Date | undefined;
  /** Request metadata: lower-case keys, first value per key. */
  metadata: Record<string, string>;
  /** Request metadata with every value per key (token rules require exactly one). */
  metadataAll: Record<string, string[]>;
  /** Remote address as grpc-js reports it. */
  peer: string;
  /** The peer's TLS leaf certificate under mTLS, else undefined. */
  peerCertificate: X509Certificate | undefined;
  /** Sets a response header; sent with the first message or at the end of a unary call. */
  setHeader(key: string, value: string): void;
}

/** Unary handler. */
export type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  req: MessageShape<I>,
  ctx: ServerCallContext,
) => Promise<MessageInitShape<O>>;
/** Server-streaming handler: return (or be) an async generator of responses. */
export type ServerStreamingHandler<I extends DescMessage, O extends DescMessage> = (
  req: MessageShape<I>,
  ctx: ServerCallContext,
) => AsyncIterable<MessageInitShape<O>>;
/** Client-streaming handler. */
export type ClientStreamingHandler<I extends DescMessage, O extends DescMessage> = (
  reqs: AsyncIterable<MessageShape<I>>,
  ctx: ServerCallContext,
) => Promise<MessageInitShape<O>>;
/** Bidirectional handler: consume requests, produce responses, both as async iterables. */
export type BidiStreamingHandler<I extends DescMessage, O extends DescMessage> = (
  reqs: AsyncIterable<MessageShape<I>>,
  ctx: ServerCallContext,
) => AsyncIterable<MessageInitShape<O>>;

type Kinded<K extends DescMethod["methodKind"], I extends DescMessage, O extends DescMessage> = {
  methodKind: K;
  input: I;
  output: O;
};

/** The handler type for one method descriptor, chosen by its streaming kind. */
export type MethodHandler<M> =
  M extends Kinded<"unary", infer I, infer O>
    ? UnaryHandler<I, O>
    : M extends Kinded<"server_streaming", infer I, infer O>
      ? ServerStreamingHandler<I, O>
      : M extends Kinded<"client_streaming", infer I, infer O>
        ? ClientStreamingHandler<I, O>
        : M extends Kinded<"bidi_streaming", infer I, infer O>
          ? BidiStreamingHandler<I, O>
          : never;

/** An implementation of a service: one handler per method, keyed by the method's local name. */
export type ServiceImpl<S extends DescService> = { [K in keyof S["method"]]: MethodHandler<S["method"][K]> };

/** The client method type for one method descriptor. */
export type ClientMethod<M> =
  M extends Kinded<"unary", infer I, infer O>
    ? (req: MessageInitShape<I>, opts?: CallOptions) => Promise<MessageShape<O>>
    : M extends Kinded<"server_streaming", infer I, infer O>
      ? (req: MessageInitShape<I>, opts?: CallOptions) => AsyncIterable<MessageShape<O>>
      : M extends Kinded<"client_streaming", infer I, infer O>
        ? (reqs: AsyncIterable<MessageInitShape<I>>, opts?: CallOptions) => Promise<MessageShape<O>>
        : M extends Kinded<"bidi_streaming", infer I, infer O>
          ? (reqs: AsyncIterable<MessageInitShape<I>>, opts?: CallOptions) => AsyncIterable<MessageShape<O>>
          : never;

/** A typed client of a service: one method per RPC, keyed by local name (`request`, `monitorConnections`). */
export type Client<S extends DescService> = { [K in keyof S["method"]]: ClientMethod<S["method"][K]> };

/**
 * One server call as interceptors see it. The same shape serves every streaming kind: `request` is set for
 * unary and server-streaming calls, `requests` for client/bidi streams, and streamed responses go out
 * through `send`.
 */
export interface ServerCall {
  /** The method descriptor (kind, input and output schemas). */
  readonly method: DescMethod;
  /** Full path, "/pkg.Service/Method". */
  readonly path: string;
  /** The handler context (metadata, deadline, signal, peer, setHeader). */
  readonly ctx: ServerCallContext;
  /** The request of unary and server-streaming calls. */
  readonly request: Message | undefined;
  /** The requests of client- and bidi-streaming calls. */
  readonly requests: AsyncIterable<Message> | undefined;
  /** Sends one streamed response; resolves once the transport can take more (backpressure). */
  send(msg: Message): Promise<void>;
}

/**
 * Runs a server call to completion: resolves with the response of a unary/client-streaming call (undefined
 * for response streams, once every message was sent) or rejects with a StatusError — so an interceptor
 * learns the outcome of every kind of call by awaiting `next(call)`.
 */
export type ServerHandlerFn = (call: ServerCall) => Promise<Message | undefined>;

/** Server middleware: wraps the next handler function (connect-es style). */
export type ServerInterceptor = (next: ServerHandlerFn) => ServerHandlerFn;

/**
 * One client call as interceptors see it. `metadata` may be modified before calling `next`; streamed
 * responses are delivered through `onMessage` (awaited, so a slow consumer slows the stream down).
 */
export interface ClientCall {
  /** The method descriptor. */
  readonly method: DescMethod;
  /** Full path, "/pkg.Service/Method". */
  readonly path: string;
  /** Request metadata (mutable by interceptors). */
  readonly metadata: Record<string, string>;
  /** Cancels the call when aborted. */
  readonly signal: AbortSignal;
  /** Deadline sent to the server, if any. */
  readonly deadline: Date | undefined;
  /** The request of unary and server-streaming calls. */
  readonly request: Message | undefined;
  /** The requests of client- and bidi-streaming calls. */
  readonly requests: AsyncIterable<Message> | undefined;
  /** Receives the response headers. */
  onHeader(header: Record<string, string>): void;
  /** Receives each streamed response in order. */
  onMessage(msg: Message): void | Promise<void>;
}

/**
 * Runs a client call to completion: resolves with the response of a unary/client-streaming call (undefined
 * for response streams after the last message) or rejects with a StatusError carrying the received status.
 */
export type ClientCallFn = (call: ClientCall) => Promise<Message | undefined>;

/** Client middleware: wraps the next call function (connect-es style). */
export type ClientInterceptor = (next: ClientCallFn) => ClientCallFn;

/** Certificate files for TLS. With `caFile` the peer must present a certificate signed by that CA (mTLS). */
export interface TlsFiles {
  /** PEM certificate chain (leaf first). */
  certFile: string;
  /** PEM private key of the leaf. */
  keyFile: string;
  /** PEM CA bundle: servers require and verify client certificates with it; clients verify the server. */
  caFile?: string;
}

/** TLS material held in memory as PEM, e.g. an X.509-SVID from the SPIFFE Workload API. */
export interface TlsMaterial {
  /** PEM certificate chain, leaf first. */
  certChainPem: string;
  /** PEM private key of the leaf. */
  keyPem: string;
  /** PEM CA certificates trusted for peers (the trust bundle). */
  caPem: string;
}

/**
 * TLS material that may change while running (rotation). Servers and channels built on it use the latest
 * material for each new connection, and after a change move new calls to new connections (rotation.ts); calls in
 * progress finish on the connection they started on.
 */
export interface TlsSource {
  /** The material new connections use now. */
  current(): TlsMaterial;
  /** Calls `listener` with the new material on every change; returns the function that unsubscribes. */
  subscribe(listener: (material: TlsMaterial) => void): () => void;
}

/** How a server or channel gets its TLS: certificate files (read when it starts) or a rotating source. */
export type TlsConfig = TlsFiles | TlsSource;
