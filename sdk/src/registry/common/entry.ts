/**
 * What the generic registry elements need to know about the two kinds of entry: which one they hold, how to copy
 * one, and how to build an empty one of the same kind (a Find template). Kept here so no element switches on
 * message types itself.
 */
import { clone, create } from "@bufbuild/protobuf";
import { type NetworkService, type NetworkServiceEndpoint, NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import type { RegistryEntry } from "../core/index.js";

/** True for a network service endpoint (the kind that has a URL, labels and an expiration). */
export function isEndpoint(entry: RegistryEntry): entry is NetworkServiceEndpoint {
  return entry.$typeName === "registry.NetworkServiceEndpoint";
}

/** A deep copy of `entry`, so an element never mutates what its caller still holds. */
export function cloneEntry<T extends RegistryEntry>(entry: T): T {
  return (isEndpoint(entry) ? clone(NetworkServiceEndpointSchema, entry) : clone(NetworkServiceSchema, entry as NetworkService)) as T;
}

/** A copy of `entry` whose URL is `url` (an endpoint's; a network service has none and is only copied). */
export function withUrl<T extends RegistryEntry>(entry: T, url: string): T {
  const c = cloneEntry(entry);
  if (isEndpoint(c)) c.url = url;
  return c;
}

/** An empty entry of the same kind as `like`, carrying only `name`: the Find template for one name. */
export function templateFor<T extends RegistryEntry>(like: T, name: string): T {
  return (isEndpoint(like) ? create(NetworkServiceEndpointSchema, { name }) : create(NetworkServiceSchema, { name })) as T;
}

/** Sets `ids[i] = id`, growing the list with empty strings when needed (path ids are positional). */
export function setPathId(ids: readonly string[], i: number, id: string): string[] {
  const out = [...ids];
  while (out.length <= i) out.push("");
  out[i] = id;
  return out;
}
