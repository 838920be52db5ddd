/**
 * The KERNEL mechanism (docs/wire-compatibility.md#kernel-mechanism): a Linux interface in a network namespace
 * given by `inodeURL`, named by `name`. Builders, accessors, and the client element that offers KERNEL with the
 * caller's own netns.
 */
import { create } from "@bufbuild/protobuf";
import { KernelParam, MechanismClass, MechanismType, OWN_NETNS_URL } from "@nsm-ts/api/constants";
import { type Mechanism, MechanismSchema } from "@nsm-ts/api/networkservice";
import { MetaKey } from "@nsm-ts/base/context";
import { generateLinuxInterfaceName, truncateLinuxInterfaceName } from "@nsm-ts/base/nanoid";
import { connectionOf } from "../../../core/chain.js";
import type { NetworkServiceElement } from "../../../core/types.js";

/** Parameters of a KERNEL mechanism. */
export interface KernelMechanismOptions {
  /** Network namespace as a URL; default `file:///proc/thread-self/ns/net` (the caller's own). */
  netnsUrl?: string;
  /** Interface name (cut to 15 characters); default unset (the client element generates one). */
  ifName?: string;
}

/** A KERNEL mechanism (class LOCAL). */
export function mechanism(opts: KernelMechanismOptions = {}): Mechanism {
  const parameters: Record<string, string> = { [KernelParam.NETNS_URL]: opts.netnsUrl ?? OWN_NETNS_URL };
  if (opts.ifName) parameters[KernelParam.INTERFACE_NAME] = truncateLinuxInterfaceName(opts.ifName);
  return create(MechanismSchema, { cls: MechanismClass.LOCAL, type: MechanismType.KERNEL, parameters });
}

/** True for a KERNEL mechanism. */
export function isKernel(m: Mechanism | undefined): m is Mechanism {
  return m?.type === MechanismType.KERNEL;
}

/** The interface name of a KERNEL mechanism, or "" when unset. */
export function interfaceNameOf(m: Mechanism | undefined): string {
  return m?.parameters[KernelParam.INTERFACE_NAME] ?? "";
}

/** The netns URL of a KERNEL mechanism, or "" when unset. */
export function netnsUrlOf(m: Mechanism | undefined): string {
  return m?.parameters[KernelParam.NETNS_URL] ?? "";
}

/** Options of the KERNEL client element. */
export interface KernelClientOptions {
  /**
   * Interface name to request; default generated from the network service name
   * (docs/wire-compatibility.md#interface-names).
   */
  interfaceName?: string;
}

const ifNameKey = new MetaKey<string>("kernel-mechanism-client.ifName");

/**
 * Client element offering KERNEL in the caller's own netns. It fills an empty interface name in every
 * KERNEL preference (adding one when there is none), keeping the same generated name for the connection's
 * whole life so refreshes do not rename the interface. Reads/writes: `mechanism_preferences`, client metadata.
 */
export function newClient(opts: KernelClientOptions = {}): NetworkServiceElement {
  return {
    name: "kernel-mechanism-client",
    async request(ctx, req, next) {
      const conn = connectionOf(req);
      const name = ctx.metadata.client.getOrSet(ifNameKey, () =>
        opts.interfaceName
          ? truncateLinuxInterfaceName(opts.interfaceName)
          : interfaceNameOf(isKernel(conn.mechanism) ? conn.mechanism : undefined) || generateLinuxInterfaceName(conn.networkService),
      );
      let found = false;
      for (const m of req.mechanismPreferences) {
        if (!isKernel(m)) continue;
        found = true;
        if (!interfaceNameOf(m)) m.parameters[KernelParam.INTERFACE_NAME] = name;
      }
      if (!found) req.mechanismPreferences.push(mechanism({ ifName: name }));
      return next.request(ctx, req);
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        ctx.metadata.client.delete(ifNameKey);
      }
    },
  };
}
