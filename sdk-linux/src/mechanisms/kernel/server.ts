/**
 * KERNEL mechanism for endpoints: puts the endpoint's own netns URL and the interface name into the KERNEL
 * mechanism it accepts, so the forwarder knows where to put the endpoint's end of the connection. A name the
 * request already carries is kept; otherwise one is generated as upstream does
 * (docs/wire-compatibility.md#interface-names) and kept for the connection's life, so refreshes never rename the
 * interface. Place it in the endpoint's `mechanisms` dispatch under `KERNEL`. Reads/writes: `connection.mechanism`,
 * server metadata.
 */

import { KernelParam } from "@nsm-ts/api/constants";
import { MetaKey } from "@nsm-ts/base/context";
import { generateLinuxInterfaceName, truncateLinuxInterfaceName } from "@nsm-ts/base/nanoid";
import { connectionOf, mechanisms, type NetworkServiceElement } from "@nsm-ts/sdk/networkservice";
import { netnsInodeUrl } from "../../netns.js";

/** Options of the endpoint's KERNEL server. */
export interface KernelServerOptions {
  /**
   * The endpoint's netns as a URL. Default `inode://<dev>/<ino>` of this process's netns: without fd passing
   * the forwarder resolves the URL itself, and a pid would mean another process in its PID namespace.
   */
  netnsUrl?: string;
  /** Interface name for every connection (cut to 15 characters); default: the requested one, or generated. */
  interfaceName?: string;
}

const nameKey = new MetaKey<string>("sdk-linux.kernel-server.ifName");

/** The endpoint-side KERNEL element. */
export function newServer(opts: KernelServerOptions = {}): NetworkServiceElement {
  const netnsUrl = opts.netnsUrl ?? netnsInodeUrl();
  return {
    name: "kernel-mechanism-server",
    async request(ctx, req, next) {
      const conn = connectionOf(req);
      const m = conn.mechanism;
      if (mechanisms.kernel.isKernel(m)) {
        const name = ctx.metadata.server.getOrSet(nameKey, () =>
          truncateLinuxInterfaceName(
            opts.interfaceName || mechanisms.kernel.interfaceNameOf(m) || generateLinuxInterfaceName(conn.networkService),
          ),
        );
        m.parameters[KernelParam.NETNS_URL] = netnsUrl;
        m.parameters[KernelParam.INTERFACE_NAME] = name;
      }
      return next.request(ctx, req);
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        ctx.metadata.server.delete(nameKey);
      }
    },
  };
}
