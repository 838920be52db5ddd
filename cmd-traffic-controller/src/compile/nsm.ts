/**
 * The NSM side of the intents of one cluster: per inbound intent a NetworkService to register in the cluster's
 * registry, and the authorization input our own mesh enforces "allowed clients" with — the SPIFFE IDs that may
 * request a connection to the service (`clientAllowed`).
 */
import { create, toJson } from "@bufbuild/protobuf";
import type { InboundIntent } from "@nsm-ts/api/intents";
import { type NetworkService, NetworkServiceSchema } from "@nsm-ts/api/registry";
import type { PathPolicyInput, Policy } from "@nsm-ts/base/policy";
import { decodeToken } from "@nsm-ts/base/token";
import type { Snapshot } from "../model.js";
import { principalsOf } from "./istio.js";

/** Who may connect to a network service (our mesh's counterpart of the AuthorizationPolicy). */
export interface AuthorizationInput {
  readonly networkService: string;
  /** Sorted SPIFFE IDs; empty: nobody. */
  readonly allowedSpiffeIds: readonly string[];
}

/** One NSM object of a cluster. */
export interface NsmResource {
  readonly service: string;
  readonly intent: string;
  readonly networkService: NetworkService;
  readonly authorization: AuthorizationInput;
}

/** Whether `spiffeId` may connect to the service `auth` describes. */
export function clientAllowed(auth: AuthorizationInput, spiffeId: string | undefined): boolean {
  return spiffeId !== undefined && auth.allowedSpiffeIds.includes(spiffeId);
}

/**
 * A path policy enforcing the input on our mesh: the connection's originating client (the first path
 * segment's token subject) must be one of the allowed SPIFFE IDs. Add it to an endpoint's (or nsmgr's)
 * authorize policies; a refusal is `PermissionDenied` naming policy `allowed_clients`.
 */
export function allowedClientsPolicy(auth: AuthorizationInput): Policy<PathPolicyInput> {
  return {
    name: "allowed_clients",
    async check(input) {
      const token = input.path.pathSegments[0]?.token ?? "";
      let sub: string | undefined;
      try {
        sub = decodeToken(token).sub;
      } catch {
        return "the first path segment carries no readable token";
      }
      if (clientAllowed(auth, sub)) return undefined;
      return `${sub ?? "an unnamed client"} is not among the allowed clients of network service ${auth.networkService}`;
    },
  };
}

/** The stored JSON form of a NetworkService (what the registry target registers). */
export function networkServiceJson(ns: NetworkService): unknown {
  return toJson(NetworkServiceSchema, ns);
}

/** The NSM objects of `cluster`, in service order. */
export function compileNsm(cluster: string, snap: Snapshot): NsmResource[] {
  const out: NsmResource[] = [];
  for (const [id, i] of snap.intents) {
    if (i.spec.case !== "inbound" || i.spec.value.cluster !== cluster) continue;
    const s: InboundIntent = i.spec.value;
    out.push({
      service: s.service,
      intent: id,
      // L3 payload: the service is reached over IP, as Istio reaches it.
      networkService: create(NetworkServiceSchema, { name: s.service, payload: "IP" }),
      authorization: { networkService: s.service, allowedSpiffeIds: principalsOf(s, snap).map((p) => `spiffe://${p}`) },
    });
  }
  return out.sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0));
}
