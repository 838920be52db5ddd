/**
 * Loads a CommonJS package the first time it is used, not when the importing module loads. etcd3 (with the gRPC
 * proto loader and protobuf parser it brings), the OpenTelemetry SDK and exporter, and Connect's server adapter
 * together cost about half a second of CPU at every program's start on a 2-core machine: every client sidecar
 * and every program paid it, even ones that never talk to etcd, export traces or serve Connect.
 */
import { createRequire } from "node:module";

/**
 * The packages loaded on first use, and only through `lazyRequire`: the program bundles leave them out
 * (`scripts/bundle.js`), and a shared program test fails if a program loads one at start.
 */
export const LAZY_PACKAGES = [
  "etcd3",
  "@opentelemetry/sdk-trace-base",
  "@opentelemetry/exporter-trace-otlp-http",
  "@opentelemetry/resources",
  "@connectrpc/connect",
  "@connectrpc/connect-node",
] as const;

/** One of `LAZY_PACKAGES`. */
export type LazyPackage = (typeof LAZY_PACKAGES)[number];

const requireHere = createRequire(import.meta.url);

/** A getter that `require`s `specifier` on its first call and returns the same module afterwards. */
export function lazyRequire<T>(specifier: LazyPackage): () => T {
  let mod: T | undefined;
  return () => {
    mod ??= requireHere(specifier) as T;
    return mod;
  };
}
