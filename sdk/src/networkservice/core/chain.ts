/**
 * Composition of elements. `chain(a, b, c)` runs a → b → c on the request and c → b → a on the way back;
 * the returned element calls its own `next` after `c`. `handler(element)` closes a chain with the terminal
 * tail (returns the request's connection), giving something you can call directly.
 */

import { create } from "@bufbuild/protobuf";
import { type Connection, ConnectionSchema, type NetworkServiceRequest } from "@nsm-ts/api/networkservice";
import { inSpan, traceKey } from "@nsm-ts/base/context";
import type { NetworkServiceElement, NetworkServiceHandler } from "./types.js";

/** The end of every chain: returns the request's connection unchanged. */
export const tail: NetworkServiceHandler = {
  async request(_ctx, req) {
    return req.connection ?? create(ConnectionSchema);
  },
  async close() {},
};

function bind(element: NetworkServiceElement, next: NetworkServiceHandler): NetworkServiceHandler {
  const name = element.name ?? "anonymous";
  // Tracing adds a span per element only when the call carries a trace (one map lookup otherwise).
  const logged = bindLogged(element, next, name);
  // Plain (non-async) functions: without a trace they return the logged call's promise as is.
  return {
    request(ctx, req) {
      const t = ctx.value(traceKey);
      if (t) return inSpan(ctx, t, `${name}.Request`, (c) => logged.request(c, req));
      return logged.request(ctx, req);
    },
    close(ctx, conn) {
      const t = ctx.value(traceKey);
      if (t) return inSpan(ctx, t, `${name}.Close`, (c) => logged.close(c, conn));
      return logged.close(ctx, conn);
    },
  };
}

function bindLogged(element: NetworkServiceElement, next: NetworkServiceHandler, name: string): NetworkServiceHandler {
  return {
    async request(ctx, req) {
      if (!ctx.log.isLevelEnabled("debug")) return element.request(ctx, req, next);
      ctx.log.debug({ element: name, op: "request", connId: req.connection?.id }, "enter");
      try {
        const conn = await element.request(ctx, req, next);
        ctx.log.debug({ element: name, op: "request", connId: conn.id }, "exit");
        return conn;
      } catch (err) {
        ctx.log.debug({ element: name, op: "request", connId: req.connection?.id, err }, "error");
        throw err;
      }
    },
    async close(ctx, conn) {
      if (!ctx.log.isLevelEnabled("debug")) return element.close(ctx, conn, next);
      ctx.log.debug({ element: name, op: "close", connId: conn.id }, "enter");
      try {
        await element.close(ctx, conn, next);
        ctx.log.debug({ element: name, op: "close", connId: conn.id }, "exit");
      } catch (err) {
        ctx.log.debug({ element: name, op: "close", connId: conn.id, err }, "error");
        throw err;
      }
    },
  };
}

/**
 * Composes elements into one: requests run through them in order, responses come back in reverse order.
 * Each element is wrapped with debug-level trace logging (entry, exit, error with the connection id) and, when
 * the call carries a trace (`traceKey`), a span named `<element>.Request` / `<element>.Close`.
 */
export function chain(...elements: NetworkServiceElement[]): NetworkServiceElement {
  // Binding allocates closures; `next` is usually the same object on every call, so bind once per `next`.
  const bound = new WeakMap<NetworkServiceHandler, NetworkServiceHandler>();
  const get = (next: NetworkServiceHandler): NetworkServiceHandler => {
    let h = bound.get(next);
    if (!h) {
      h = bindAll(elements, next);
      bound.set(next, h);
    }
    return h;
  };
  return {
    name: "chain",
    request: (ctx, req, next) => get(next).request(ctx, req),
    close: (ctx, conn, next) => get(next).close(ctx, conn),
  };
}

function bindAll(elements: NetworkServiceElement[], last: NetworkServiceHandler): NetworkServiceHandler {
  let h = last;
  for (let i = elements.length - 1; i >= 0; i--) h = bind(elements[i] as NetworkServiceElement, h);
  return h;
}

/** Turns an element (usually a chain) into a callable handler ending in `tail`. */
export function handler(element: NetworkServiceElement, last: NetworkServiceHandler = tail): NetworkServiceHandler {
  return bindAll([element], last);
}

/** An element that just passes everything on; useful as a placeholder for optional elements. */
export const passThrough: NetworkServiceElement = {
  name: "passthrough",
  request: (ctx, req, next) => next.request(ctx, req),
  close: (ctx, conn, next) => next.close(ctx, conn),
};

/** Helper for element authors: the request's connection, or a new empty one attached to the request. */
export function connectionOf(req: NetworkServiceRequest): Connection {
  if (!req.connection) req.connection = create(ConnectionSchema);
  return req.connection;
}
