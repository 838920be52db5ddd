/**
 * Composition of elements. `chain(a, b, c)` runs a → b → c on the request and c → b → a on the way back;
 * the returned element calls its own `next` after `c`. `handler(element)` closes a chain with the terminal
 * tail (returns the request's connection), giving something you can call directly.
 */

import { create } from "@bufbuild/protobuf";
import { type Connection, ConnectionSchema, type NetworkServiceRequest } from "@nsm-ts/api/networkservice";
import { createComposer } from "@nsm-ts/base/chain";
import type { NetworkServiceElement, NetworkServiceHandler } from "./types.js";

/** The end of every chain: returns the request's connection unchanged. */
export const tail: NetworkServiceHandler = {
  async request(_ctx, req) {
    return req.connection ?? create(ConnectionSchema);
  },
  async close() {},
};

const composer = createComposer<NetworkServiceHandler>({
  unary: ["request", "close"],
  fields: (op, arg) => ({ connId: op === "request" ? (arg as NetworkServiceRequest).connection?.id : (arg as Connection).id }),
});

/**
 * Composes elements into one: requests run through them in order, responses come back in reverse order.
 * Each element is wrapped with debug-level trace logging (entry, exit, error with the connection id) and, when
 * the call carries a trace (`traceKey`), a span named `<element>.Request` / `<element>.Close`.
 */
export function chain(...elements: NetworkServiceElement[]): NetworkServiceElement {
  return composer.chain(...elements);
}

/** Turns an element (usually a chain) into a callable handler ending in `tail`. */
export function handler(element: NetworkServiceElement, last: NetworkServiceHandler = tail): NetworkServiceHandler {
  return composer.handler(element, last);
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
