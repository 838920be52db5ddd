/**
 * The registry server's interdomain switch: an entry or query naming another domain (`name@domain`, or an
 * endpoint serving `service@domain`) is not stored here but forwarded to the registry proxy
 * (`NSM_PROXY_REGISTRY_URL`: the nsmgr-proxy's registry, which forwards to the registry proxy that resolves the
 * domain); everything else goes on to the store. Without a proxy an interdomain name is `FailedPrecondition`.
 */
import type { CallContext } from "@nsm-ts/base/context";
import type { Channel } from "@nsm-ts/base/grpc";
import { Code, fail } from "@nsm-ts/base/status";
import type { TokenGenerator } from "@nsm-ts/base/token";
import * as connect from "../common/connect/index.js";
import { domainOfEntry } from "../common/dnsresolve/index.js";
import { type FindQuery, type FindResult, type RegistryElement, registryHandler } from "../core/index.js";
import type { RegistryEntryOf, RegistryKind } from "../store/index.js";

/** Creates the switch for registry `kind`; `proxy` is the channel to the registry proxy (or none). */
export function newInterdomainSwitch<K extends RegistryKind>(
  kind: K,
  proxy: Channel | (() => Channel) | undefined,
  tokenGenerator: TokenGenerator,
): RegistryElement<RegistryEntryOf[K]> {
  type T = RegistryEntryOf[K];
  const remote =
    proxy === undefined ? undefined : registryHandler<T>(connect.newClient(kind, proxy, { tokenGenerator }) as RegistryElement<T>);
  const to = (entry: T): typeof remote => {
    const domain = domainOfEntry(entry);
    if (domain === "") return undefined;
    return (
      remote ??
      fail(
        Code.FailedPrecondition,
        `registry: "${entry.name}" belongs to domain "${domain}" but no proxy registry is configured (NSM_PROXY_REGISTRY_URL)`,
      )
    );
  };
  return {
    name: "interdomain",
    register: (ctx, entry, next) => (to(entry) ?? next).register(ctx, entry),
    find: (ctx: CallContext, query: FindQuery<T>, next): AsyncIterable<FindResult<T>> => (to(query.template) ?? next).find(ctx, query),
    unregister: (ctx, entry, next) => (to(entry) ?? next).unregister(ctx, entry),
  };
}
