/**
 * The server side of the typed layer: protobuf-es service descriptors plus async handlers in, a grpc-js
 * server out. Handlers see a `ServerCallContext` (signal, deadline, metadata, peer), interceptors see every
 * call as one `ServerCall` shape, and every server also answers `grpc.health.v1.Health`.
 */
import { existsSync, lstatSync, unlinkSync } from "node:fs";
import { create, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  DEFAULT_CALL_DEADLINE_MS,
  DEFAULT_DEADLINE_MARGIN_MS,
  DEFAULT_MAX_RECV_MESSAGE_BYTES,
  DEFAULT_RECEIVE_TIMEOUT_MS,
} from "../limits/index.js";
import { type Logger, silentLogger } from "../log/index.js";
import { Code, StatusError } from "../status/index.js";
import { armDefaultDeadline, armEarlyAnswer, receiveTimeout } from "./call-limits.js";
import { DEFAULT_KEEPALIVE, type Keepalive, NO_CHANNELZ } from "./channel.js";
import { compose } from "./compose.js";
import { isTlsSource, serverCredentials } from "./credentials.js";
import { grpcServiceDefinition, methodPath, tolerantDeserializerFor, Undecodable } from "./definition.js";
import { toStatusObject } from "./errors.js";
import { HealthState, type HealthStatus, healthImpl, healthService } from "./health.js";
import { goawayOnRotation } from "./rotation.js";
import { type AnyServerCall, CallContext } from "./server-context.js";
import { drained, pumpResponses, ready, requestQueue, undecodableError } from "./server-io.js";
import { watchSessions } from "./server-sessions.js";
import type { ServerCall, ServerHandlerFn, ServerInterceptor, ServiceImpl, TlsConfig } from "./types.js";
import { formatUrl, parseUrl } from "./url.js";

/** Options of `createServer`. */
export interface ServerOptions {
  /**
   * Certificate files (with `caFile` clients must present a certificate signed by it: mTLS), or a rotating `TlsSource`
   * (always mTLS: clients must chain to its CA bundle). Default: insecure.
   */
  tls?: TlsConfig;
  /** Middleware around every handler, first = outermost. */
  interceptors?: ServerInterceptor[];
  /** Where handler failures that are not StatusErrors get logged. Default: silent. */
  log?: Logger;
  /**
   * Largest message the server accepts, in bytes; larger ones are refused with `ResourceExhausted` before any
   * handler runs. Default `DEFAULT_MAX_RECV_MESSAGE_BYTES` (4 MiB; docs/wire-compatibility.md#limits).
   */
  maxRecvMessageBytes?: number;
  /**
   * How long a unary or server-streaming call may take to deliver its request message; a caller that stalls is
   * answered `DeadlineExceeded`. Default `DEFAULT_RECEIVE_TIMEOUT_MS` (30 s); 0 = no limit.
   */
  receiveTimeoutMs?: number;
  /**
   * The deadline of a unary or client-streaming call that carries none, counted from its start: then the handler's
   * signal aborts and the caller is answered `DeadlineExceeded`. Response streams are exempt. Default
   * `DEFAULT_CALL_DEADLINE_MS` (60 s); 0 = none.
   */
  defaultDeadlineMs?: number;
  /**
   * How long before its deadline a unary or client-streaming call is answered `DeadlineExceeded` (at most a tenth
   * of the call's time), so that the caller gets the server's status instead of resetting the stream at its
   * deadline: Node's HTTP/2 server closes a session after ~1,000 resets (call-limits.ts). The handler's signal
   * still aborts at the deadline. Default `DEFAULT_DEADLINE_MARGIN_MS` (500 ms); 0 = answer at the deadline.
   */
  deadlineMarginMs?: number;
  /**
   * Keepalive of every accepted connection: a ping each `timeMs`, and a connection whose ping is unanswered
   * `timeoutMs` later has its socket destroyed, so that a connection stalled in both directions (two Node peers
   * each waiting for its own write) does not keep its socket and buffers for ever. Default `DEFAULT_KEEPALIVE`
   * (60 s, 20 s); `false` turns it off (server-sessions.ts).
   */
  keepalive?: Keepalive | false;
  /** Raw grpc-js server options (message sizes, …); they win over `maxRecvMessageBytes` (their interceptors run after ours). */
  grpcOptions?: grpc.ServerOptions;
}

/** A gRPC server with typed services, health and graceful shutdown. */
export interface NsmServer {
  /** Serves `impl` for `service` and marks `service.typeName` SERVING in health. */
  addService<S extends DescService>(service: S, impl: ServiceImpl<S>): void;
  /** Binds `tcp://host:port` (port 0 = any) or `unix:///path`; resolves with the bound URL (real port). */
  listen(url: string): Promise<string>;
  /** The health status table served by `grpc.health.v1.Health` ("" = the whole server). */
  health: { set(service: string, status: HealthStatus): void };
  /**
   * Stops: health goes NOT_SERVING, response streams are ended (their signals abort with Unavailable),
   * unary calls may finish within `graceMs` (default 2000), then everything left is cancelled.
   */
  close(opts?: { graceMs?: number }): Promise<void>;
}

/** Creates a server; it always serves `grpc.health.v1.Health` (Check + Watch) with "" SERVING. */
export function createServer(opts: ServerOptions = {}): NsmServer {
  const log = opts.log ?? silentLogger;
  const interceptors = opts.interceptors ?? [];
  const server = new grpc.Server({
    "grpc.max_receive_message_length": opts.maxRecvMessageBytes ?? DEFAULT_MAX_RECV_MESSAGE_BYTES,
    ...NO_CHANNELZ,
    ...opts.grpcOptions,
    interceptors: [receiveTimeout(opts.receiveTimeoutMs ?? DEFAULT_RECEIVE_TIMEOUT_MS), ...(opts.grpcOptions?.interceptors ?? [])],
  });
  const defaultDeadlineMs = opts.defaultDeadlineMs ?? DEFAULT_CALL_DEADLINE_MS;
  const limits: CallLimits = { defaultDeadlineMs, deadlineMarginMs: opts.deadlineMarginMs ?? DEFAULT_DEADLINE_MARGIN_MS };
  const active = new Set<CallContext>();
  const health = new HealthState();
  const unixPaths: string[] = [];
  let closing = false;
  let closed: Promise<void> | undefined;
  // A rotating certificate moves clients to new connections, so their token checks see the new certificate.
  const tls = opts.tls;
  const sessions = watchSessions(server, opts.keepalive ?? DEFAULT_KEEPALIVE, log);
  const unsubscribe =
    tls !== undefined && isTlsSource(tls)
      ? goawayOnRotation(
          () => sessions.goawayAll(),
          (l) => tls.subscribe(l),
        )
      : () => {};

  const register = (service: DescService, impl: Record<string, unknown>): void => {
    const generic = grpcServiceDefinition(service);
    // Server side: a malformed body reaches the handler wrapper as `Undecodable` (→ InvalidArgument), not a throw.
    const def: grpc.ServiceDefinition = Object.fromEntries(
      Object.entries(generic).map(([name, d]) => {
        const m = service.methods.find((x) => x.localName === name);
        return [name, m ? { ...d, requestDeserialize: tolerantDeserializerFor(m.input) } : d];
      }),
    );
    const handlers: grpc.UntypedServiceImplementation = {};
    for (const method of service.methods) {
      const h = impl[method.localName];
      if (typeof h !== "function") {
        throw new StatusError(Code.InvalidArgument, `grpc: ${service.typeName} implementation lacks ${method.localName}`);
      }
      const fn = compose(interceptors, innerHandler(method, h as UserHandler, log));
      handlers[method.localName] = grpcHandler(method, fn, active, log, () => closing, limits);
    }
    server.addService(def, handlers);
  };

  register(healthService, healthImpl(health) as unknown as Record<string, unknown>);
  health.set("", "SERVING");

  return {
    addService(service, impl) {
      register(service, impl as unknown as Record<string, unknown>);
      health.set(service.typeName, "SERVING");
    },
    async listen(url) {
      const parsed = parseUrl(url);
      if (parsed.path) removeStaleSocket(parsed.path);
      const port = await new Promise<number>((resolve, reject) => {
        server.bindAsync(parsed.grpcTarget, serverCredentials(opts.tls), (err, p) =>
          err ? reject(new StatusError(Code.Unavailable, `grpc: listen on ${url}: ${err.message}`, { cause: err })) : resolve(p),
        );
      });
      sessions.adopt();
      if (parsed.path) unixPaths.push(parsed.path);
      return formatUrl(parsed, port);
    },
    health: { set: (service, status) => health.set(service, status) },
    close({ graceMs = 2000 } = {}) {
      closed ??= (async () => {
        closing = true;
        unsubscribe();
        sessions.stop();
        health.shutdown();
        // One macrotask so health watchers can send NOT_SERVING before their streams end.
        await new Promise((r) => setImmediate(r));
        const unavailable = new StatusError(Code.Unavailable, "grpc: server is shutting down");
        for (const c of active) if (c.streaming) c.abort(unavailable);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            for (const c of active) c.abort(unavailable);
            server.forceShutdown();
            resolve();
          }, graceMs);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        for (const c of active) c.abort(unavailable);
        // A stalled connection survives grpc-js's forced shutdown (its session waits for a write that never ends).
        sessions.destroyAll();
        for (const p of unixPaths) removeStaleSocket(p);
      })();
      return closed;
    },
  };
}

type UserHandler = (req: unknown, ctx: CallContext) => unknown;

function removeStaleSocket(path: string): void {
  if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path);
}

/** Turns anything a handler throws into a StatusError; unexpected errors are logged and become Internal. */
function asStatus(err: unknown, call: ServerCall, log: Logger): StatusError {
  if (err instanceof StatusError) return err;
  const reason: unknown = call.ctx.signal.reason;
  if (call.ctx.signal.aborted && reason instanceof StatusError) return reason;
  log.error({ err, method: call.path }, "grpc: handler failed");
  const message = err instanceof Error ? err.message : String(err);
  return new StatusError(Code.Internal, `${call.path}: ${message}`, { cause: err });
}

/** The innermost handler function: calls the user's handler and converts messages and errors. */
function innerHandler(method: DescMethod, h: UserHandler, log: Logger): ServerHandlerFn {
  const output = method.output;
  switch (method.methodKind) {
    case "unary":
      return async (call) => {
        try {
          return create(output, (await h(call.request, call.ctx as CallContext)) as Message);
        } catch (err) {
          throw asStatus(err, call, log);
        }
      };
    case "client_streaming":
      return async (call) => {
        try {
          return create(output, (await h(call.requests, call.ctx as CallContext)) as Message);
        } catch (err) {
          throw asStatus(err, call, log);
        }
      };
    case "server_streaming":
    case "bidi_streaming": {
      const input = method.methodKind === "server_streaming" ? "request" : "requests";
      return async (call) => {
        try {
          await pumpResponses(h(call[input], call.ctx as CallContext) as AsyncIterable<Message>, call, output);
          return undefined;
        } catch (err) {
          throw asStatus(err, call, log);
        }
      };
    }
  }
}

const noSend = (): Promise<void> => Promise.reject(new StatusError(Code.Internal, "grpc: this method does not stream responses"));

/** Runs a handler function; a synchronous throw (say, in an interceptor) becomes a rejection, never a crash. */
function run(fn: ServerHandlerFn, call: ServerCall): Promise<Message | undefined> {
  try {
    const req: unknown = call.request;
    if (req instanceof Undecodable) return Promise.reject(undecodableError(req, call.path));
    return fn(call);
  } catch (err) {
    return Promise.reject(err);
  }
}

/** The time limits `grpcHandler` applies to unary and client-streaming calls (see call-limits.ts). */
interface CallLimits {
  defaultDeadlineMs: number;
  deadlineMarginMs: number;
}

/** Adapts a composed handler function to the grpc-js handler of the method's kind. */
function grpcHandler(
  method: DescMethod,
  fn: ServerHandlerFn,
  active: Set<CallContext>,
  log: Logger,
  closing: () => boolean,
  { defaultDeadlineMs, deadlineMarginMs }: CallLimits,
): grpc.UntypedHandleCall {
  const path = methodPath(method);
  const kind = method.methodKind;
  const streamingOut = kind === "server_streaming" || kind === "bidi_streaming";

  const start = (gcall: AnyServerCall): { ctx: CallContext; end: () => void } => {
    const ctx = new CallContext(path, gcall, streamingOut, log);
    if (closing()) ctx.abort(new StatusError(Code.Unavailable, "grpc: server is shutting down"));
    const onCancel = (): void => ctx.abort(ctx.cancelReason());
    const events: NodeJS.EventEmitter = gcall;
    events.on("cancelled", onCancel);
    active.add(ctx);
    return {
      ctx,
      end: () => {
        events.removeListener("cancelled", onCancel);
        active.delete(ctx);
      },
    };
  };

  if (kind === "unary" || kind === "client_streaming") {
    return (
      gcall: grpc.ServerUnaryCall<Message, Message> | grpc.ServerReadableStream<Message, Message>,
      cb: grpc.sendUnaryData<Message>,
    ) => {
      const { ctx, end } = start(gcall);
      const call: ServerCall = {
        method,
        path,
        ctx,
        request: kind === "unary" ? (gcall as grpc.ServerUnaryCall<Message, Message>).request : undefined,
        requests: kind === "client_streaming" ? requestQueue(gcall as grpc.ServerReadableStream<Message, Message>, ctx) : undefined,
        send: noSend,
      };
      let settled = false;
      const answer = (err: StatusError): void => {
        settled = true;
        end();
        ctx.flushHeaders();
        cb(toStatusObject(err));
      };
      const deadline = ctx.deadline;
      const disarm =
        deadline === undefined
          ? armDefaultDeadline(defaultDeadlineMs, () => {
              const err = new StatusError(
                Code.DeadlineExceeded,
                `${path}: no answer within ${defaultDeadlineMs} ms, the server's deadline for calls that carry none`,
              );
              ctx.abort(err);
              answer(err);
            })
          : armEarlyAnswer(
              deadline.getTime(),
              Date.now(),
              deadlineMarginMs,
              () => answer(new StatusError(Code.DeadlineExceeded, `${path}: deadline exceeded`)),
              () => ctx.abort(new StatusError(Code.DeadlineExceeded, `${path}: deadline exceeded`)),
            );
      run(fn, call).then(
        (res) => {
          disarm();
          if (settled) return;
          end();
          ctx.flushHeaders();
          cb(null, res ?? create(method.output));
        },
        (err: unknown) => {
          disarm();
          if (settled) return;
          end();
          ctx.flushHeaders();
          cb(toStatusObject(err instanceof StatusError ? err : asStatus(err, call, log)));
        },
      );
    };
  }

  return (gcall: grpc.ServerWritableStream<Message, Message> | grpc.ServerDuplexStream<Message, Message>) => {
    const { ctx, end } = start(gcall);
    const signal = ctx.signal;
    const call: ServerCall = {
      method,
      path,
      ctx,
      request: kind === "server_streaming" ? (gcall as grpc.ServerWritableStream<Message, Message>).request : undefined,
      requests: kind === "bidi_streaming" ? requestQueue(gcall as grpc.ServerDuplexStream<Message, Message>, ctx) : undefined,
      send(msg) {
        if (signal.aborted) return Promise.reject(signal.reason);
        ctx.flushHeaders();
        return gcall.write(msg) ? ready : drained(gcall, signal);
      },
    };
    run(fn, call).then(
      () => {
        end();
        if (gcall.cancelled) return;
        ctx.flushHeaders();
        const reason: unknown = signal.reason;
        // A stream the server ended because it is shutting down tells the client so (it may redial).
        if (signal.aborted && reason instanceof StatusError) gcall.emit("error", toStatusObject(reason));
        else gcall.end();
      },
      (err: unknown) => {
        end();
        if (gcall.cancelled) return;
        ctx.flushHeaders();
        gcall.emit("error", toStatusObject(err instanceof StatusError ? err : asStatus(err, call, log)));
      },
    );
  };
}
