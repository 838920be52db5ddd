/** Paged lists of any kind in id order, filtered by the request fields that apply to the kind. */
import type { Message } from "@bufbuild/protobuf";
import {
  type DnsRecord,
  type IpAddress,
  IpState,
  type ListRequest,
  type MacAddress,
  type Network,
  type Node,
  type Port,
  type RouteTable,
  type Subnet,
  type VirtualIp,
} from "@nsm-ts/api/resources";
import { Code, fail } from "@nsm-ts/base/status";
import type { ResourceKind, ResourceStore } from "../store.js";
import { type WithRevision, withRevision } from "./records.js";

/** Page size of List calls that ask for none. */
export const DEFAULT_PAGE_SIZE = 100;
/** Largest page size of List calls; larger requests get pages of this size. */
export const MAX_PAGE_SIZE = 1000;

/** One page of `kind`; the page token is the last id, tagged with the kind so it cannot page another list. */
export async function listPage<T extends WithRevision>(
  store: ResourceStore,
  kind: ResourceKind,
  req: ListRequest,
): Promise<{ items: T[]; nextPageToken: string }> {
  if (req.pageSize < 0) fail(Code.InvalidArgument, `resources: page_size: ${req.pageSize} is negative`);
  const size = Math.min(req.pageSize || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
  let after: string | undefined;
  if (req.pageToken !== "") {
    after = Buffer.from(req.pageToken, "base64url").toString();
    if (!after.startsWith(`${kind}:`)) fail(Code.InvalidArgument, `resources: page_token: not a token of a ${kind} list`);
    after = after.slice(kind.length + 1);
  }
  const match = listFilter(kind, req);
  const recs = await store.list(kind, {
    ...(kind === "ip" && req.subnetId !== "" ? { prefix: `${req.subnetId}/` } : {}),
    ...(after === undefined ? {} : { after }),
    limit: size,
    filter: (r) => match(r.value),
  });
  const last = recs[recs.length - 1];
  return {
    items: recs.map((r) => withRevision<T>(r)),
    nextPageToken: recs.length === size && last !== undefined ? Buffer.from(`${kind}:${last.id}`).toString("base64url") : "",
  };
}

function listFilter(kind: ResourceKind, req: ListRequest): (v: Message) => boolean {
  const eq = (want: string, have: string): boolean => want === "" || want === have;
  switch (kind) {
    case "network":
    case "securitygroup":
      return (v) => eq(req.name, (v as Network).name);
    case "subnet":
      return (v) => eq(req.networkId, (v as Subnet).networkId) && eq(req.name, (v as Subnet).name);
    case "routetable":
      return (v) => eq(req.networkId, (v as RouteTable).networkId) && eq(req.name, (v as RouteTable).name);
    case "ip":
      return (v) => {
        const ip = v as IpAddress;
        return eq(req.subnetId, ip.subnetId) && eq(req.owner, ip.owner) && (req.state === IpState.UNSPECIFIED || req.state === ip.state);
      };
    case "mac":
      return (v) => eq(req.owner, (v as MacAddress).owner);
    case "port":
      return (v) => {
        const p = v as Port;
        return (
          eq(req.networkId, p.networkId) &&
          eq(req.owner, p.owner) &&
          eq(req.name, p.name) &&
          (req.subnetId === "" || p.fixedIps.some((f) => f.subnetId === req.subnetId))
        );
      };
    case "vip":
      return (v) => {
        const x = v as VirtualIp;
        return eq(req.subnetId, x.subnetId) && eq(req.owner, x.owner) && eq(req.name, x.name);
      };
    case "dns":
    case "node":
      return (v) => eq(req.name, (v as DnsRecord | Node).name);
  }
}
