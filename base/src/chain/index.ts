/**
 * Composition shared by the networkservice and the registry chains. `createComposer(kind)` gives `chain(a, b, c)`,
 * which runs a → b → c on the way in and c → b → a on the way back, and `handler(element, last)`, which closes a
 * chain with its tail. Every element is wrapped with debug logs (enter, exit, error, naming the connection or
 * entry) and, when the call carries a trace (`traceKey`), a span named `<element>.<Op>` per unary call. Without
 * debug logging and tracing a wrapped call costs one level check and one map lookup.
 */
import type { CallContext } from "../context/context.js";
import { inSpan, traceKey } from "../context/trace.js";

/** An element over handler `H`: each method of `H` with the rest of the chain (`next`) as third parameter. */
export type ElementOf<H> = { readonly name?: string } & {
  [K in keyof H]: H[K] extends (ctx: CallContext, arg: infer A) => infer R ? (ctx: CallContext, arg: A, next: H) => R : never;
};

/** What a kind of chain looks like: its unary and streaming operations, and how to name a call in logs. */
export interface ChainKind<H> {
  /** Operations returning a promise; each gets a span (`<element>.<Op>`) and enter/exit/error logs. */
  readonly unary: readonly (keyof H & string)[];
  /** Operations returning an async iterable; each gets enter/exit/error logs around the iteration. */
  readonly streaming?: readonly (keyof H & string)[];
  /** Log fields that name what a call is about (a connection id, an entry name). */
  fields(op: string, arg: unknown): Record<string, unknown>;
}

/** `chain` and `handler` for one kind of chain. */
export interface Composer<H> {
  /** Composes elements into one; `next` bindings are cached per `next` object, so reuse costs nothing. */
  chain(...elements: ElementOf<H>[]): ElementOf<H>;
  /** Closes `element` (usually a chain) with `last`, giving something callable. */
  handler(element: ElementOf<H>, last: H): H;
}

type Unary = (ctx: CallContext, arg: unknown, next?: unknown) => Promise<unknown>;
type Streaming = (ctx: CallContext, arg: unknown, next?: unknown) => AsyncIterable<unknown>;

const spanOp = (op: string): string => op.charAt(0).toUpperCase() + op.slice(1);

/** Creates the composer of one kind of chain. */
export function createComposer<H extends object>(kind: ChainKind<H>): Composer<H> {
  const streaming = kind.streaming ?? [];

  function bindUnary(name: string, op: string, fn: Unary, next: H): Unary {
    const span = `${name}.${spanOp(op)}`;
    const logged = (ctx: CallContext, arg: unknown): Promise<unknown> => {
      if (ctx.log.isLevelEnabled("debug")) return debugged(ctx, arg);
      // Not an async function: that would wrap every element's promise in one more (a promise and its ticks
      // per element per call); a synchronous throw still comes back as a rejection, as it did.
      try {
        const r = fn(ctx, arg, next);
        return r instanceof Promise ? r : Promise.resolve(r);
      } catch (err) {
        return Promise.reject(err);
      }
    };
    const debugged = async (ctx: CallContext, arg: unknown): Promise<unknown> => {
      ctx.log.debug({ element: name, op, ...kind.fields(op, arg) }, "enter");
      try {
        const r = await fn(ctx, arg, next);
        ctx.log.debug({ element: name, op, ...kind.fields(op, arg) }, "exit");
        return r;
      } catch (err) {
        ctx.log.debug({ element: name, op, ...kind.fields(op, arg), err }, "error");
        throw err;
      }
    };
    // A plain function: without a trace it hands back the logged call's promise as is.
    return (ctx, arg) => {
      const t = ctx.value(traceKey);
      return t ? inSpan(ctx, t, span, (c) => logged(c, arg)) : logged(ctx, arg);
    };
  }

  function bindStreaming(name: string, op: string, fn: Streaming, next: H): Streaming {
    return (ctx, arg) => {
      if (!ctx.log.isLevelEnabled("debug")) return fn(ctx, arg, next);
      return (async function* () {
        ctx.log.debug({ element: name, op, ...kind.fields(op, arg) }, "enter");
        try {
          yield* fn(ctx, arg, next);
          ctx.log.debug({ element: name, op, ...kind.fields(op, arg) }, "exit");
        } catch (err) {
          ctx.log.debug({ element: name, op, ...kind.fields(op, arg), err }, "error");
          throw err;
        }
      })();
    };
  }

  function bind(element: ElementOf<H>, next: H): H {
    const name = element.name ?? "anonymous";
    const el = element as unknown as Record<string, Unary & Streaming>;
    const h: Record<string, unknown> = {};
    for (const op of kind.unary) h[op] = bindUnary(name, op, (el[op] as Unary).bind(element), next);
    for (const op of streaming) h[op] = bindStreaming(name, op, (el[op] as Streaming).bind(element), next);
    return h as H;
  }

  function bindAll(elements: readonly ElementOf<H>[], last: H): H {
    let h = last;
    for (let i = elements.length - 1; i >= 0; i--) h = bind(elements[i] as ElementOf<H>, h);
    return h;
  }

  return {
    chain(...elements) {
      const bound = new WeakMap<H, H>();
      const get = (next: H): H => {
        let h = bound.get(next);
        if (!h) {
          h = bindAll(elements, next);
          bound.set(next, h);
        }
        return h;
      };
      const composed: Record<string, unknown> = { name: "chain" };
      for (const op of [...kind.unary, ...streaming]) {
        composed[op] = (ctx: CallContext, arg: unknown, next: H) => (get(next) as Record<string, Unary>)[op]?.(ctx, arg);
      }
      return composed as ElementOf<H>;
    },
    handler: (element, last) => bindAll([element], last),
  };
}
