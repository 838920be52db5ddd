/**
 * Loads a CommonJS package the first time it is used, not when the importing module loads. etcd3 (with the gRPC
 * proto loader and protobuf parser it brings), the OpenTelemetry SDK and exporter, and Connect's server adapter
 * together cost about half a second of CPU at every program's start on a 2-core machine: every client sidecar
 * and every program paid it, even ones that never talk to etcd, export traces or serve Connect.
 */
import { createRequire } from "node:module";

const requireHere = createRequire(import.meta.url);

/** A getter that `require`s `specifier` on its first call and returns the same module afterwards. */
export function lazyRequire<T>(specifier: string): () => T {
  let mod: T | undefined;
  return () => {
    mod ??= requireHere(specifier) as T;
    return mod;
  };
}
