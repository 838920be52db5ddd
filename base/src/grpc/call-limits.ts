/**
 * Time limits a server puts on calls so a stalled caller cannot hold a call open forever. grpc-js keeps a call whose
 * request body never completes, or whose handler never answers, for as long as the caller's deadline — and a call
 * without a `grpc-timeout` has none. Two limits close that gap (docs/reliability.md#stalled-calls):
 *
 * - the receive timeout: a call whose request is one message (unary, server streaming) must deliver it, up to the
 *   end of the request stream, within `receiveTimeoutMs` of its start, or it is answered `DeadlineExceeded`;
 * - the default deadline: a unary or client-streaming call that carries no deadline gets one, `defaultDeadlineMs`
 *   after it started; then its handler's signal aborts and the caller is answered `DeadlineExceeded`. Response
 *   streams (monitor and registry watches) are meant to live long and are exempt.
 *
 * A third rule keeps deadline expiries from killing the caller's HTTP/2 session: a unary or client-streaming call
 * that carries a deadline is answered `DeadlineExceeded` by the server a margin before that deadline (its handler's
 * signal still aborts at the deadline itself). A gRPC client that reaches its deadline first must reset the stream
 * (RST_STREAM), and Node's HTTP/2 server answers more than ~1,000 resets on one session (refilled at 33 per second)
 * with GOAWAY(INTERNAL_ERROR), failing every call on that session — what an overloaded hop did to its callers once
 * ~1,000 of their Requests had timed out (docs/reliability.md#http2-rapid-reset-guard). A call that ends with the
 * server's status needs no reset.
 */
import * as grpc from "@grpc/grpc-js";

/**
 * A grpc-js server interceptor enforcing the receive timeout (see the header comment); `timeoutMs` 0 turns it off.
 * Runs below our handlers, because a handler is only called once the request message is complete.
 */
export function receiveTimeout(timeoutMs: number): grpc.ServerInterceptor {
  return (method, call) => {
    if (!(timeoutMs > 0) || method.requestStream) return new grpc.ServerInterceptingCall(call);
    let timer: NodeJS.Timeout | undefined;
    const stop = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    };
    return new grpc.ServerInterceptingCall(call, {
      start(next) {
        timer = setTimeout(() => {
          timer = undefined;
          call.sendStatus({
            code: grpc.status.DEADLINE_EXCEEDED,
            details: `grpc: ${method.path}: the request message did not arrive within ${timeoutMs} ms (receive timeout)`,
          });
        }, timeoutMs);
        timer.unref();
        next({
          onReceiveHalfClose(nextHalfClose) {
            stop();
            nextHalfClose();
          },
          onCancel: stop,
        });
      },
      sendStatus(status, next) {
        stop();
        next(status);
      },
    });
  };
}

/**
 * Arms the default deadline of one call that carries none: `onExpire` runs once `deadlineMs` have passed, unless the
 * returned function was called first (the call ended). `deadlineMs` 0 arms nothing.
 */
export function armDefaultDeadline(deadlineMs: number, onExpire: () => void): () => void {
  if (!(deadlineMs > 0)) return () => {};
  const timer = setTimeout(onExpire, deadlineMs);
  timer.unref();
  return () => clearTimeout(timer);
}

/**
 * Arms the early answer of one call that carries a deadline (see the header comment): `answer` runs `margin` before
 * `deadline` (epoch ms), where `margin` is `marginMs` but at most a tenth of the time left at `now`, and `expire` runs
 * at the deadline itself, unless the returned function was called first (the call ended). `marginMs` 0 answers at
 * the deadline. Both run on one timer at a time.
 */
export function armEarlyAnswer(deadline: number, now: number, marginMs: number, answer: () => void, expire: () => void): () => void {
  const left = Math.max(0, deadline - now);
  const margin = Math.min(Math.max(0, marginMs), left / 10);
  let timer = setTimeout(() => {
    answer();
    timer = setTimeout(expire, margin);
    timer.unref();
  }, left - margin);
  timer.unref();
  return () => clearTimeout(timer);
}
