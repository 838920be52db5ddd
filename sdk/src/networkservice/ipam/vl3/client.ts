/**
 * vl3 (client): the client side of a vL3 endpoint connecting to a peer vL3 endpoint, as upstream's
 * `ipcontext/vl3` client. It brings the endpoint's own address as the connection's source address and a route
 * to the endpoint's whole prefix through it, so the peer routes our members to us (and recognises us as a peer,
 * see `newServer`). On a prefix reset it re-requests the connection (through begin's event factory) with the
 * new address and prefix, dropping the old ones.
 *
 * Writes: `context.ip_context.src_ip_addrs`, `dst_routes`. Client metadata: the generation and the reset
 * subscription. Placement: in a client chain after `begin` and `metadata` (the `additional` elements of `client()`).
 */
import { create } from "@bufbuild/protobuf";
import { ConnectionContextSchema, IPContextSchema } from "@nsm-ts/api/networkservice";
import { MetaKey } from "@nsm-ts/base/context";
import { Code, fail } from "@nsm-ts/base/status";
import { eventFactoryOf } from "../../common/begin/index.js";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";
import type { Vl3Ipam } from "./ipam.js";
import { addAddr, addRoute, dropPrefix } from "./server.js";

interface ClientState {
  prefix: string;
  gen: number;
  unsubscribe: () => void;
}

const stateKey = new MetaKey<ClientState>("vl3.client");

/** Creates the vL3 IPAM client element for `ipam`. */
export function newClient(ipam: Vl3Ipam): NetworkServiceElement {
  return {
    name: "vl3-client",
    async request(ctx, req, next) {
      if (!ipam.initialized) fail(Code.Unavailable, "vl3: the endpoint has no prefix yet (prefix server not answered)");
      const conn = connectionOf(req);
      conn.context ??= create(ConnectionContextSchema);
      conn.context.ipContext ??= create(IPContextSchema);
      const ip = conn.context.ipContext;
      const md = ctx.metadata.client;
      let st = md.get(stateKey);
      const first = st === undefined;
      if (st !== undefined && st.gen !== ipam.generation) {
        dropPrefix(ip, st.prefix);
        st.prefix = ipam.prefix;
        st.gen = ipam.generation;
      }
      if (st === undefined) {
        const events = eventFactoryOf(ctx, "vl3-client");
        const log = ctx.log;
        const unsubscribe = ipam.subscribe(() => {
          log.info({ connId: conn.id, prefix: ipam.prefix }, "vl3-client: prefix changed, re-requesting the peer connection");
          events
            .request()
            .catch((err: unknown) => log.warn({ connId: conn.id, err }, "vl3-client: re-request after a prefix change failed"));
        });
        events.signal.addEventListener("abort", unsubscribe, { once: true });
        st = { prefix: ipam.prefix, gen: ipam.generation, unsubscribe };
        md.set(stateKey, st);
      }
      addAddr(ip.srcIpAddrs, ipam.selfAddress);
      addRoute(ip.dstRoutes, ipam.selfAddress);
      addRoute(ip.dstRoutes, ipam.prefix, ipam.selfIp);
      try {
        return await next.request(ctx, req);
      } catch (err) {
        if (first) md.delete(stateKey)?.unsubscribe();
        throw err;
      }
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        ctx.metadata.client.delete(stateKey)?.unsubscribe();
      }
    },
  };
}
