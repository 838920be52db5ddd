/** Interceptor composition shared by servers and clients. */

/**
 * Wraps `base` with interceptors so the first in the list is the outermost: it sees the call first and the
 * outcome last, the order connect-es and grpc-js use.
 */
export function compose<F>(interceptors: ReadonlyArray<(next: F) => F>, base: F): F {
  let fn = base;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    const ic = interceptors[i];
    if (ic) fn = ic(fn);
  }
  return fn;
}
