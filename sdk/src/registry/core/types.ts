/**
 * The registry element contract, written once for both kinds of entry (network services and endpoints)
 * where upstream repeats four near-identical variants. An element sees Register/Unregister on the way in
 * and the stored entry on the way back; Find returns an async iterable, so watch streams are natural.
 */
import type { NetworkService, NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import type { CallContext } from "@nsm-ts/base/context";

/** A registry entry: a network service or an endpoint. Both are keyed by `name`. */
export type RegistryEntry = NetworkService | NetworkServiceEndpoint;

/** A Find query: a template (see docs/wire-compatibility.md#find-and-watch) and whether to keep watching. */
export interface FindQuery<T extends RegistryEntry> {
  template: T;
  watch: boolean;
}

/** One Find result or watch event. */
export interface FindResult<T extends RegistryEntry> {
  entry: T;
  deleted: boolean;
}

/** The rest of a registry chain after an element. */
export interface RegistryHandler<T extends RegistryEntry> {
  register(ctx: CallContext, entry: T): Promise<T>;
  find(ctx: CallContext, query: FindQuery<T>): AsyncIterable<FindResult<T>>;
  unregister(ctx: CallContext, entry: T): Promise<void>;
}

/** One element of a registry chain (server or client side), generic over the entry kind. */
export interface RegistryElement<T extends RegistryEntry> {
  readonly name?: string;
  register(ctx: CallContext, entry: T, next: RegistryHandler<T>): Promise<T>;
  find(ctx: CallContext, query: FindQuery<T>, next: RegistryHandler<T>): AsyncIterable<FindResult<T>>;
  unregister(ctx: CallContext, entry: T, next: RegistryHandler<T>): Promise<void>;
}

/** Network service registry element. */
export type NsElement = RegistryElement<NetworkService>;
/** Endpoint registry element. */
export type NseElement = RegistryElement<NetworkServiceEndpoint>;
/** Network service registry handler (what a client or a chain offers callers). */
export type NsHandler = RegistryHandler<NetworkService>;
/** Endpoint registry handler. */
export type NseHandler = RegistryHandler<NetworkServiceEndpoint>;
