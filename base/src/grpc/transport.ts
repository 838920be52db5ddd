/**
 * The bottom of every client call: grpc-js makes the call (unary, client, server or bidi streaming) and this
 * translates the signal, metadata, flow control and status of the typed layer onto it.
 */
import type { DescMethod, Message } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { type StatusError, toStatusError } from "../status/index.js";
import { deserializerFor, methodPath, serializerFor } from "./definition.js";
import { canceledError, fromServiceError } from "./errors.js";
import { DEADLINE_HEADER, firstValues, toGrpcMetadata } from "./metadata.js";
import type { ClientCall, ClientCallFn } from "./types.js";

/** The signal of a call made without one: never aborts, so the transport does not listen to it. */
export const neverAborted: AbortSignal = new AbortController().signal;
/** Does nothing (a default callback). */
export const noop = (): void => undefined;

/**
 * The call's metadata, plus its deadline as epoch milliseconds (`DEADLINE_HEADER`): `grpc-timeout` is relative,
 * so a server that read it after a slow transit would think the deadline later than ours and answer after we
 * gave up (and reset the stream, see call-limits.ts); with the absolute time it answers before.
 */
function metadataOf(call: ClientCall): grpc.Metadata {
  const md = toGrpcMetadata(call.metadata);
  if (call.deadline) md.set(DEADLINE_HEADER, String(call.deadline.getTime()));
  return md;
}

/** The base call function for one method: grpc-js does the call, we translate signal, metadata and status. */
export function transport(raw: grpc.Client, method: DescMethod): ClientCallFn {
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
          const g = raw.makeUnaryRequest(path, ser, de, call.request as Message, metadataOf(call), callOptions(call), (err, res) => {
            if (onAbort) call.signal.removeEventListener("abort", onAbort);
            if (err) reject(fromServiceError(err));
            else resolve(res);
          });
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
          const g = raw.makeClientStreamRequest(path, ser, de, metadataOf(call), callOptions(call), (err, res) => {
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
          const md = metadataOf(call);
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
