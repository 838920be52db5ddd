/**
 * Puts the node's services into the namespace of every KERNEL client this forwarder serves: wraps the KERNEL
 * server element so that once a connection is up its client's netns is attached to the service data plane,
 * and detached on Close. Reads: `connection.mechanism` (KERNEL, `netnsURL`). Writes: server metadata (the
 * attached namespace). The connection never waits for, nor fails because of, service rules: their outcome is
 * the per-service status the data plane reports.
 */
import { MechanismType } from "@nsm-ts/api/constants";
import { MetaKey } from "@nsm-ts/base/context";
import { mechanisms, type NetworkServiceElement } from "@nsm-ts/sdk/networkservice";
import { type Netns, openNetns } from "../netns.js";
import type { ServiceDataplane } from "./dataplane.js";

const attachedKey = new MetaKey<Netns>("sdk-linux.services.attached");

/** Returns `elements` with its KERNEL element wrapped to attach client namespaces to `dp`. */
export function withServices(elements: mechanisms.MechanismElements, dp: ServiceDataplane): mechanisms.MechanismElements {
  const inner = elements[MechanismType.KERNEL];
  if (inner === undefined) return elements;
  const wrapped: NetworkServiceElement = {
    name: "services",
    async request(ctx, req, next) {
      const conn = await inner.request(ctx, req, next);
      if (ctx.metadata.server.get(attachedKey) !== undefined) return conn; // a refresh: already attached
      const url = mechanisms.kernel.netnsUrlOf(conn.mechanism ?? req.connection?.mechanism);
      if (url === "") return conn;
      try {
        const ns = await openNetns(url);
        ctx.metadata.server.set(attachedKey, ns);
        await dp.attach(ns);
      } catch (err) {
        ctx.log.warn({ err, connId: conn.id, netns: url }, "services: cannot attach the client namespace; no ServiceIPs there");
      }
      return conn;
    },
    async close(ctx, conn, next) {
      try {
        await inner.close(ctx, conn, next);
      } finally {
        const ns = ctx.metadata.server.get(attachedKey);
        ctx.metadata.server.delete(attachedKey);
        if (ns !== undefined)
          await dp
            .detach(ns)
            .catch((err: unknown) => ctx.log.warn({ err, connId: conn.id }, "services: detaching the client namespace failed"));
      }
    },
  };
  return { ...elements, [MechanismType.KERNEL]: wrapped };
}
