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
