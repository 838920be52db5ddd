/**
 * ServiceIPs and instance IPs come from ranges the operator configures, allocated by the resource managers: each
 * range becomes a network with one subnet (`services-<range>`), so addresses are recorded, unique and released
 * like every other IP, and an etcd resource store shares them across replicas.
 */
import { create } from "@bufbuild/protobuf";
import { AllocateIpAddressRequestSchema, IpAddressRefSchema, NetworkSchema, SubnetSchema } from "@nsm-ts/api/resources";
import type { BalancingPolicy } from "@nsm-ts/api/services";
import { requireCidr } from "@nsm-ts/base/netaddr";
import { Code, fail, isStatusError } from "@nsm-ts/base/status";
import type { ResourceManagers } from "@nsm-ts/resources";
import { POLICY_NAMES, policyName } from "./names.js";

/** What the model needs of an allocator: `range` is a policy name or `instance`. */
export interface AddressAllocator {
  /** Allocates `address` (checked to lie in the range) or the next free one; `owner` is recorded with it. */
  allocate(range: string, owner: string, address?: string): Promise<string>;
  /** Releases an address allocated before (unknown ones are ignored). */
  release(range: string, address: string): Promise<void>;
  /** True when the range is configured. */
  has(range: string): boolean;
}

/** The configured ranges: a CIDR per policy name (`round-robin`, `closest`, `consistent-hash`) and for instances. */
export interface ServiceRanges {
  readonly policies: Readonly<Partial<Record<string, string>>>;
  readonly instance?: string | undefined;
}

/** The range name of a policy (its operator name). */
export const rangeOfPolicy = (p: BalancingPolicy): string => policyName(p);

/** An allocator over the resource managers; call `init()` once before use (creates the networks and subnets). */
export function createResourceAllocator(managers: ResourceManagers, ranges: ServiceRanges): AddressAllocator & { init(): Promise<void> } {
  const cidrs = new Map<string, string>();
  for (const [name, cidr] of Object.entries(ranges.policies)) {
    if (cidr === undefined) continue;
    if (!Object.values(POLICY_NAMES).includes(name)) fail(Code.InvalidArgument, `services: ranges: unknown policy ${JSON.stringify(name)}`);
    requireCidr(cidr, `services: ranges[${name}]`, { strict: true });
    cidrs.set(name, cidr);
  }
  if (ranges.instance !== undefined) {
    requireCidr(ranges.instance, "services: ranges[instance]", { strict: true });
    cidrs.set("instance", ranges.instance);
  }
  const subnetOf = (range: string): string => `services-${range}`;
  return {
    has: (range) => cidrs.has(range),
    async init() {
      for (const [range, cidr] of cidrs) {
        const id = subnetOf(range);
        await ignoreExists(managers.createNetwork(create(NetworkSchema, { id, name: id, cidr })));
        await ignoreExists(managers.createSubnet(create(SubnetSchema, { id, name: id, networkId: id, cidr })));
      }
    },
    async allocate(range, owner, address = "") {
      if (!cidrs.has(range)) fail(Code.FailedPrecondition, `services: no ${range} range is configured`);
      const ip = await managers.allocateIpAddress(create(AllocateIpAddressRequestSchema, { subnetId: subnetOf(range), address, owner }));
      return ip.address;
    },
    async release(range, address) {
      if (!cidrs.has(range) || address === "") return;
      try {
        await managers.releaseIpAddress(create(IpAddressRefSchema, { subnetId: subnetOf(range), address }));
      } catch (err) {
        if (!isStatusError(err, Code.NotFound)) throw err;
      }
    },
  };
}

async function ignoreExists(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!isStatusError(err, Code.AlreadyExists)) throw err;
  }
}
