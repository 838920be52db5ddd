/**
 * Test helpers shared by the resource managers' tests: request and record builders, every IP of a subnet
 * across pages, and a status expectation.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  AllocateIpAddressRequestSchema,
  type IpAddress,
  type ListRequest,
  ListRequestSchema,
  type Network,
  NetworkSchema,
  type Subnet,
  SubnetSchema,
} from "@nsm-ts/api/resources";
import { StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";

/** Awaits `p` and returns its StatusError; fails the test when it resolves or throws something else. */
export async function statusOf(p: Promise<unknown>): Promise<StatusError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof StatusError) return err;
    throw err;
  }
  expect.fail("expected a StatusError");
}

/** A network `id` with `cidr`. */
export const network = (id: string, cidr = "198.51.100.0/24"): Network => create(NetworkSchema, { id, cidr });
/** A subnet `id` of network `networkId`. */
export const subnet = (id: string, networkId: string, cidr: string, extra: MessageInitShape<typeof SubnetSchema> = {}): Subnet =>
  create(SubnetSchema, { id, networkId, cidr, ...extra });
/** An AllocateIpAddress request: any free address of the subnet, or `address`. */
export const alloc = (subnetId: string, address = "", owner = "") => create(AllocateIpAddressRequestSchema, { subnetId, address, owner });
/** A List request. */
export const list = (extra: Record<string, unknown> = {}) => create(ListRequestSchema, extra);

/** What `allIps` needs of the resource managers. */
export interface IpLister {
  list<T extends IpAddress>(kind: "ip", req: ListRequest): Promise<{ items: T[]; nextPageToken: string }>;
}

/** Every IP address record of a subnet, page by page. */
export async function allIps(m: IpLister, subnetId: string): Promise<IpAddress[]> {
  const out: IpAddress[] = [];
  let pageToken = "";
  do {
    const page = await m.list<IpAddress>("ip", list({ subnetId, pageSize: 1000, pageToken }));
    out.push(...page.items);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return out;
}
