/**
 * The client side of the typed layer: `createClient` a typed client of a protobuf-es service on a `Channel`
 * (see channel.ts). Every call runs through the channel's interceptors and ends with a StatusError on failure;
 * response streams are async iterables that cancel the call when left early.
 */
import { create, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import { AsyncQueue } from "../queue/index.js";
import { Code, StatusError, toStatusError } from "../status/index.js";
import { CallSlots } from "./call-slots.js";
import type { Channel, ClientLease } from "./channel.js";
import { compose } from "./compose.js";
import { methodPath } from "./definition.js";
import { neverAborted, noop, transport } from "./transport.js";
import type { CallOptions, Client, ClientCall, ClientCallFn } from "./types.js";

/** A typed client of `service` on `channel`, one method per RPC keyed by local name. */
export function createClient<S extends DescService>(service: S, channel: Channel): Client<S> {
  const client: Record<string, unknown> = {};
  for (const method of service.methods) {
    const lease = channel.lease;
    const raw = lease === undefined ? transport(channel.grpcClient, method) : leased(lease, method);
    const slots = method.methodKind === "unary" ? slotsOf(channel) : undefined;
    const base: ClientCallFn = slots === undefined ? raw : (call) => slots.run(call.path, call.signal, call.deadline, () => raw(call));
    const fn = compose(channel.interceptors, base);
    client[method.localName] = clientMethod(method, fn);
  }
  return client as Client<S>;
}

/** One `CallSlots` per channel, shared by every client created on it; none when the channel sets no bound. */
const slotsByChannel = new WeakMap<Channel, CallSlots>();
function slotsOf(channel: Channel): CallSlots | undefined {
  const max = channel.maxUnaryCalls;
  if (max === undefined || max <= 0) return undefined;
  let s = slotsByChannel.get(channel);
  if (s === undefined) {
    s = new CallSlots(max);
    slotsByChannel.set(channel, s);
  }
  return s;
}

/** A call function that runs each call on the grpc-js client the channel lends it (rotating TLS channels). */
function leased(lease: () => ClientLease, method: DescMethod): ClientCallFn {
  const byClient = new WeakMap<grpc.Client, ClientCallFn>();
  return (call) => {
    const l = lease();
    let fn = byClient.get(l.raw);
    if (fn === undefined) {
      fn = transport(l.raw, method);
      byClient.set(l.raw, fn);
    }
    let p: Promise<Message | undefined>;
    try {
      p = fn(call);
    } catch (err) {
      l.release();
      throw err;
    }
    p.then(l.release, l.release);
    return p;
  };
}

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
