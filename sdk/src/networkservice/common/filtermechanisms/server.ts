/**
 * filtermechanisms: keeps only the mechanism preferences that fit the next hop: local ones (class LOCAL,
 * and NOOP, which has no class) when the next hop is on this node (`unix://`, `inode://`), remote ones
 * (class REMOTE) when it is across the network (`tcp://`). A request without a next-hop URL passes unchanged.
 * Reads: context value `clienturl.urlKey`. Writes: `mechanism_preferences`. Place after the element that
 * chooses the next hop (roundrobin, discoverforwarder, clienturl).
 */
import { MechanismClass, MechanismType } from "@nsm-ts/api/constants";
import type { Mechanism } from "@nsm-ts/api/networkservice";
import type { NetworkServiceElement } from "../../core/types.js";
import { urlKey } from "../clienturl/index.js";

/** Options of filtermechanisms. */
export interface FilterMechanismsOptions {
  /** Keep class-less NOOP preferences for `tcp://` next hops too (NOOP-only multi-node sandboxes); default false. */
  keepNoopForRemote?: boolean;
}

const isNoop = (m: Mechanism): boolean => m.type === MechanismType.NOOP && m.cls === "";

/** Creates the filtermechanisms server element. */
export function newServer(opts: FilterMechanismsOptions = {}): NetworkServiceElement {
  return {
    name: "filtermechanisms",
    async request(ctx, req, next) {
      const u = urlKey.get(ctx);
      if (u) {
        const scheme = u.protocol.replace(/:$/, "");
        const before = req.mechanismPreferences.length;
        if (scheme === "unix" || scheme === "inode") {
          req.mechanismPreferences = req.mechanismPreferences.filter((m) => m.cls === MechanismClass.LOCAL || isNoop(m));
        } else if (scheme === "tcp") {
          req.mechanismPreferences = req.mechanismPreferences.filter(
            (m) => m.cls === MechanismClass.REMOTE || (opts.keepNoopForRemote === true && isNoop(m)),
          );
        }
        if (req.mechanismPreferences.length !== before) {
          ctx.log.debug(
            { connId: req.connection?.id, url: u.href, kept: req.mechanismPreferences.map((m) => m.type) },
            "filtermechanisms: filtered",
          );
        }
      }
      return next.request(ctx, req);
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}
