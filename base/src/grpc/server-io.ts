/**
 * The streaming plumbing of the server side: pumping a handler's responses into a grpc-js stream (with
 * backpressure) and feeding a request stream into an async queue.
 */
import { create, type DescMethod, type Message } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import { AsyncQueue } from "../queue/index.js";
import { Code, StatusError } from "../status/index.js";
import { Undecodable } from "./definition.js";
import type { CallContext } from "./server-context.js";
import type { ServerCall } from "./types.js";

/**
 * Sends every response of a handler's iterable. When the call is cancelled the iterator's `return()` is
 * called right away (an async generator runs its `finally` at its next `yield`).
 */
export async function pumpResponses(iterable: AsyncIterable<Message>, call: ServerCall, output: DescMethod["output"]): Promise<void> {
  const it = iterable[Symbol.asyncIterator]();
  let finished = false;
  const stop = (): void => {
    if (finished) return;
    finished = true;
    Promise.resolve()
      .then(() => it.return?.())
      .catch(() => undefined);
  };
  const signal = call.ctx.signal;
  signal.addEventListener("abort", stop);
  try {
    for (;;) {
      const r = await it.next();
      if (r.done) {
        finished = true;
        return;
      }
      if (signal.aborted) return;
      const sent = call.send(create(output, r.value));
      if (sent !== ready) await sent;
    }
  } catch (err) {
    finished = true;
    throw err;
  } finally {
    signal.removeEventListener("abort", stop);
    if (!finished) {
      finished = true;
      await it.return?.();
    }
  }
}

/** What `send` returns when the transport took the message at once; lets the pump skip an await. */
export const ready: Promise<void> = Promise.resolve();

/** Resolves when `stream` drains, or rejects when the call is cancelled first. */
export function drained(stream: NodeJS.EventEmitter, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    };
    const onAbort = (): void => {
      stream.removeListener("drain", onDrain);
      reject(signal.reason);
    };
    stream.once("drain", onDrain);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Feeds an incoming request stream into an async queue, pausing the transport while the queue is full. */
export function requestQueue(
  call: grpc.ServerReadableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
  ctx: CallContext,
): AsyncQueue<Message> {
  let paused = false;
  const q = new AsyncQueue<Message>({
    onSpace: () => {
      if (paused) {
        paused = false;
        call.resume();
      }
    },
  });
  call.on("data", (m: Message | Undecodable) => {
    if (m instanceof Undecodable) {
      q.end(undecodableError(m, ctx.method));
      return;
    }
    if (!q.push(m) && !paused) {
      paused = true;
      call.pause();
    }
  });
  call.on("end", () => q.end());
  ctx.signal.addEventListener("abort", () => q.end(ctx.signal.reason), { once: true });
  return q;
}

/** The InvalidArgument a request body that did not decode answers (see `Undecodable`). */
export function undecodableError(u: Undecodable, path: string): StatusError {
  return new StatusError(Code.InvalidArgument, `${path}: the request body is not a valid ${u.typeName}: ${u.reason}`);
}
