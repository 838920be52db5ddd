/**
 * Composition of registry elements: `registryChain(a, b, c)` runs a → b → c on Register/Unregister/Find and
 * returns through c → b → a. `registryHandler(element)` closes a chain with a tail that echoes Register,
 * ends Find with nothing and accepts Unregister.
 */
import type { CallContext } from "@nsm-ts/base/context";
import { inSpan, traceKey } from "@nsm-ts/base/context";
import type { FindQuery, FindResult, RegistryElement, RegistryEntry, RegistryHandler } from "./types.js";

/** The end of every registry chain. */
export function registryTail<T extends RegistryEntry>(): RegistryHandler<T> {
  return {
    register: async (_ctx, entry) => entry,
    find: async function* () {},
    unregister: async () => {},
  };
}

function bind<T extends RegistryEntry>(el: RegistryElement<T>, next: RegistryHandler<T>): RegistryHandler<T> {
  const name = el.name ?? "anonymous";
  return {
    async register(ctx, entry) {
      if (ctx.log.isLevelEnabled("debug")) ctx.log.debug({ element: name, op: "register", name: entry.name }, "enter");
      // With tracing on (the call carries a trace) each element's Register gets a span.
      const t = ctx.value(traceKey);
      return t ? inSpan(ctx, t, `${name}.Register`, (c) => el.register(c, entry, next)) : el.register(ctx, entry, next);
    },
    find(ctx, query) {
      if (ctx.log.isLevelEnabled("debug")) ctx.log.debug({ element: name, op: "find", watch: query.watch }, "enter");
      return el.find(ctx, query, next);
    },
    async unregister(ctx, entry) {
      if (ctx.log.isLevelEnabled("debug")) ctx.log.debug({ element: name, op: "unregister", name: entry.name }, "enter");
      const t = ctx.value(traceKey);
      return t ? inSpan(ctx, t, `${name}.Unregister`, (c) => el.unregister(c, entry, next)) : el.unregister(ctx, entry, next);
    },
  };
}

function bindAll<T extends RegistryEntry>(els: RegistryElement<T>[], last: RegistryHandler<T>): RegistryHandler<T> {
  let h = last;
  for (let i = els.length - 1; i >= 0; i--) h = bind(els[i] as RegistryElement<T>, h);
  return h;
}

/** Composes registry elements into one (debug-level trace logging per element). */
export function registryChain<T extends RegistryEntry>(...elements: RegistryElement<T>[]): RegistryElement<T> {
  const bound = new WeakMap<RegistryHandler<T>, RegistryHandler<T>>();
  const get = (next: RegistryHandler<T>): RegistryHandler<T> => {
    let h = bound.get(next);
    if (!h) {
      h = bindAll(elements, next);
      bound.set(next, h);
    }
    return h;
  };
  return {
    name: "chain",
    register: (ctx, entry, next) => get(next).register(ctx, entry),
    find: (ctx, query, next) => get(next).find(ctx, query),
    unregister: (ctx, entry, next) => get(next).unregister(ctx, entry),
  };
}

/** Turns a registry element (usually a chain) into a callable handler. */
export function registryHandler<T extends RegistryEntry>(
  element: RegistryElement<T>,
  last: RegistryHandler<T> = registryTail<T>(),
): RegistryHandler<T> {
  return bindAll([element], last);
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
