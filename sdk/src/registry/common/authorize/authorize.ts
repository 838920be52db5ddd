/**
 * authorize (registry server): only the original registrant of a name may refresh or unregister it (policy
 * `registry_client_allowed`), so one workload cannot take over another's endpoint or service. The caller is the
 * subject of the path's first token (or the mTLS peer); the owner is `path_ids[0]` stored for the name.
 * Reads: the `pathKey` context value, `ctx.peer`. Place after `updatepath` and `begin` (so racing callers for a new name are checked one at a time).
 */
import type { CallContext } from "@nsm-ts/base/context";
import { enforce, type Policy, type RegistryPolicyInput, registryClientAllowed } from "@nsm-ts/base/policy";
import type { RegistryElement, RegistryEntry } from "../../core/index.js";
import { pathKey } from "../grpcmetadata/index.js";
import { subjectOf } from "../updatepath/index.js";

/** Options of `authorize.newServer`. */
export interface AuthorizeOptions {
  /** Policies to enforce; default `[registryClientAllowed]`. */
  policies?: readonly Policy<RegistryPolicyInput>[];
  /**
   * The stored `path_ids` of a name, or undefined when it is not registered. Pass the store's lookup so the rule
   * holds across replicas and survives expiry; default: a map this element keeps from its own calls.
   */
  owners?: (name: string) => Promise<readonly string[] | undefined>;
}

/** The registrant's SPIFFE ID: the mTLS peer when it is the first hop, else the first path token's subject. */
export function callerOf(ctx: CallContext): string {
  const path = pathKey.get(ctx);
  // When the registrant is our direct peer (we are hop 1), its mTLS certificate is proof; a token is only a claim.
  if (ctx.peer?.spiffeId !== undefined && (path === undefined || path.index <= 1)) return ctx.peer.spiffeId;
  return subjectOf(path?.segments[0]?.token) ?? ctx.peer?.spiffeId ?? subjectOf(ctx.peer?.token?.token) ?? "";
}

/** Creates the server element (see the header comment). */
export function newServer<T extends RegistryEntry>(opts: AuthorizeOptions = {}): RegistryElement<T> {
  const policies = opts.policies ?? [registryClientAllowed];
  const local = new Map<string, string[]>();
  const owners = opts.owners ?? (async (name: string) => local.get(name));
  const check = async (ctx: CallContext, name: string): Promise<void> => {
    const ids = await owners(name);
    const pathIdsMap = new Map<string, string[]>();
    if (ids !== undefined) pathIdsMap.set(name, [...ids]);
    await enforce(policies, { resourceId: callerOf(ctx), resourceName: name, pathIdsMap }, "authorize");
  };
  return {
    name: "authorize",
    async register(ctx, entry, next) {
      await check(ctx, entry.name);
      const res = await next.register(ctx, entry);
      if (opts.owners === undefined && !local.has(res.name)) local.set(res.name, [...res.pathIds]);
      return res;
    },
    find: (ctx, query, next) => next.find(ctx, query),
    async unregister(ctx, entry, next) {
      await check(ctx, entry.name);
      await next.unregister(ctx, entry);
      local.delete(entry.name);
    },
  };
}

/**
 * The owner rule as a check for the store element's compare-and-swap (`store.newServer(s, { check })`): the same
 * policies, applied to the entry the swap is based on, so two replicas cannot both hand out a new name.
 */
export function ownerCheck<T extends RegistryEntry>(
  policies: readonly Policy<RegistryPolicyInput>[] = [registryClientAllowed],
): (ctx: CallContext, stored: T | undefined, incoming: T) => Promise<void> {
  return async (ctx, stored, incoming) => {
    const pathIdsMap = new Map<string, string[]>();
    if (stored !== undefined) pathIdsMap.set(stored.name, [...stored.pathIds]);
    await enforce(policies, { resourceId: callerOf(ctx), resourceName: incoming.name, pathIdsMap }, "authorize");
  };
}
