/**
 * serverview: the boundary between the server part and the client part of one chain (nsmgr, forwarder,
 * passthrough endpoint). The client part returns the next hop's view of the connection (its id, its path
 * index); the server elements before this one (monitor, timeout, begin) must see this hop's own view, or they
 * would store the connection under the next hop's id. It puts this hop's id and path index back on the way out.
 * Place between the last server element and the first client element.
 */
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";

/**
 * Creates the serverview element.
 * @internal Exported for the test sandbox, which builds passthrough endpoints from the same parts.
 */
export function newServerView(): NetworkServiceElement {
  return {
    name: "serverview",
    async request(ctx, req, next) {
      const conn = connectionOf(req);
      const id = conn.id;
      const index = conn.path?.index;
      const out = await next.request(ctx, req);
      out.id = id;
      if (out.path && index !== undefined) out.path.index = index;
      return out;
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}
