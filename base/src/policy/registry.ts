/**
 * Registry authorize policy: only the original registrant of a name may refresh or unregister it, so one
 * workload cannot hijack another's endpoint or service entry.
 */
import type { Policy } from "./policy.js";

/**
 * Input of the registry policy, as upstream's registry authorize builds it
 * (docs/wire-compatibility.md#registry-ownership).
 */
export interface RegistryPolicyInput {
  /** Caller's SPIFFE ID: `sub` of the first token of the registry path. */
  resourceId: string;
  /** Name of the NS or NSE being registered/unregistered. */
  resourceName: string;
  /** Name → path ids stored when that name was first registered; `ids[0]` is the owner. */
  pathIdsMap: ReadonlyMap<string, string[]>;
}

/** A new name is allowed; an existing one only when its stored `path_ids[0]` is the caller. */
export const registryClientAllowed: Policy<RegistryPolicyInput> = {
  name: "registry_client_allowed",
  async check({ resourceId, resourceName, pathIdsMap }) {
    const ids = pathIdsMap.get(resourceName);
    if (ids === undefined) return undefined;
    if (ids[0] !== undefined && ids[0] === resourceId) return undefined;
    return `${JSON.stringify(resourceName)} is owned by ${JSON.stringify(ids[0] ?? "")}, not ${JSON.stringify(resourceId)}`;
  },
};
