/**
 * The element contract of nsm-ts. An element sees a request on its way in and the connection on its way
 * back, and calls `next` to hand on; `next` is a parameter, never looked up from the context. Client and
 * server elements have the same shape: a server chain whose tail is a client chain (nsmgr, forwarder,
 * passthrough endpoints) is simply one longer chain.
 *
 * Ownership: the chain entry (server adapter or client facade) gives the chain its own copy of the
 * request, so elements may change `req.connection` in place; an element that keeps a connection beyond
 * the call stores a clone.
 */
import type { Connection, ConnectionEvent, MonitorScopeSelector, NetworkServiceRequest } from "@nsm-ts/api/networkservice";
import type { CallContext } from "@nsm-ts/base/context";

/** The rest of the chain after an element. */
export interface NetworkServiceHandler {
  /** Requests (or refreshes) a connection. */
  request(ctx: CallContext, req: NetworkServiceRequest): Promise<Connection>;
  /** Closes a connection. */
  close(ctx: CallContext, conn: Connection): Promise<void>;
}

/** One element of a NetworkService chain (server or client side). */
export interface NetworkServiceElement {
  /** Name used in trace logs; defaults to "anonymous". */
  readonly name?: string;
  /** Handles a Request on its way in; calls `next.request` to continue. */
  request(ctx: CallContext, req: NetworkServiceRequest, next: NetworkServiceHandler): Promise<Connection>;
  /** Handles a Close on its way in; calls `next.close` to continue (always, even on local errors). */
  close(ctx: CallContext, conn: Connection, next: NetworkServiceHandler): Promise<void>;
}

/** A server-side element. */
export type NetworkServiceServer = NetworkServiceElement;
/** A client-side element. */
export type NetworkServiceClient = NetworkServiceElement;

/** Serves MonitorConnections: an initial state transfer, then UPDATE/DELETE events, until `ctx.signal` aborts. */
export interface MonitorConnectionServer {
  monitorConnections(ctx: CallContext, selector: MonitorScopeSelector): AsyncIterable<ConnectionEvent>;
}
