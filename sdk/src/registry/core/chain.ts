/**
 * Composition of registry elements: `registryChain(a, b, c)` runs a → b → c on Register/Unregister/Find and
 * returns through c → b → a. `registryHandler(element)` closes a chain with a tail that echoes Register,
 * ends Find with nothing and accepts Unregister.
 */

import { createComposer } from "@nsm-ts/base/chain";
import type { CallContext } from "@nsm-ts/base/context";
import type { FindQuery, FindResult, RegistryElement, RegistryEntry, RegistryHandler } from "./types.js";

/** The end of every registry chain. */
export function registryTail<T extends RegistryEntry>(): RegistryHandler<T> {
  return {
    register: async (_ctx, entry) => entry,
    find: async function* () {},
    unregister: async () => {},
  };
}

const composer = createComposer<RegistryHandler<RegistryEntry>>({
  unary: ["register", "unregister"],
  streaming: ["find"],
  fields: (op, arg) => (op === "find" ? { watch: (arg as FindQuery<RegistryEntry>).watch } : { name: (arg as RegistryEntry).name }),
});

/**
 * Composes registry elements into one. Each element is wrapped with debug-level logging (enter, exit, error,
 * with the entry name) and, when the call carries a trace, a span named `<element>.Register` / `.Unregister`.
 */
export function registryChain<T extends RegistryEntry>(...elements: RegistryElement<T>[]): RegistryElement<T> {
  return composer.chain(...(elements as unknown as RegistryElement<RegistryEntry>[])) as unknown as RegistryElement<T>;
}

/** Turns a registry element (usually a chain) into a callable handler. */
export function registryHandler<T extends RegistryEntry>(
  element: RegistryElement<T>,
  last: RegistryHandler<T> = registryTail<T>(),
): RegistryHandler<T> {
  return composer.handler(
    element as unknown as RegistryElement<RegistryEntry>,
    last as unknown as RegistryHandler<RegistryEntry>,
  ) as unknown as RegistryHandler<T>;
}

/** An element that passes everything on. */
export function registryPassThrough<T extends RegistryEntry>(): RegistryElement<T> {
  return {
    name: "passthrough",
    register: (ctx, e, n) => n.register(ctx, e),
    find: (ctx: CallContext, q: FindQuery<T>, n: RegistryHandler<T>): AsyncIterable<FindResult<T>> => n.find(ctx, q),
    unregister: (ctx, e, n) => n.unregister(ctx, e),
  };
}
