/**
 * IP addresses: allocated from one bitmap per subnet (lowest free for IPv4 and small pools, random for IPv6),
 * loaded once from the subnet and its addresses. On a shared store the bitmap is a hint: the store's
 * create-if-absent decides, a conflict moves on to the next address, and an exhausted bitmap is reloaded once
 * before the subnet counts as full.
 */
import { create } from "@bufbuild/protobuf";
import {
  type BulkAllocateIpAddressesRequest,
  type IpAddress,
  type IpAddressRef,
  IpAddressSchema,
  IpState,
  type Subnet,
} from "@nsm-ts/api/resources";
import { Code, fail, isStatusError } from "@nsm-ts/base/status";
import { formatCidr, formatIp, parseIp, requireCidr, requireIp } from "../address.js";
import { KeyedMutex, SubnetAllocator } from "../allocator.js";
import type { StoreOp, WriteCaller } from "../store.js";
import type { ChangeFeeds } from "./feed.js";
import { canonicalIp, ipId, need, requireCount } from "./fields.js";
import type { Records } from "./records.js";

/** The IP address manager and the per-subnet bitmaps (internal; `ResourceManagers` serves it). */
export class IpAddresses {
  private readonly locks = new KeyedMutex();
  private readonly subnets = new Map<string, SubnetAllocator>();
  /** Allocations a shared store refused because another writer held the address; each cost one retry. */
  conflicts = 0;

  constructor(
    private readonly records: Records,
    private readonly feeds: ChangeFeeds,
  ) {}

  private get exclusive(): boolean {
    return this.records.store.exclusive;
  }

  /** Allocates `count` addresses from one subnet, all or none. */
  async bulkAllocate(req: BulkAllocateIpAddressesRequest, caller?: WriteCaller): Promise<IpAddress[]> {
    const subnetId = need(req.subnetId, "subnet_id");
    requireCount(req.count);
    for (let attempt = 0; ; attempt++) {
      const alloc = await this.allocator(subnetId, "subnet_id");
      const taken: bigint[] = [];
      for (let i = 0; i < req.count; i++) {
        const v = alloc.take(!this.exclusive);
        if (v === undefined) break;
        taken.push(v);
      }
      if (taken.length < req.count) {
        for (const v of taken) alloc.clear(v);
        if (!this.exclusive && attempt === 0) {
          await this.resync(subnetId);
          continue;
        }
        fail(
          Code.ResourceExhausted,
          `resources: subnet_id: subnet "${subnetId}" (${formatCidr(alloc.cidr)}) has ${alloc.free} free addresses, ${req.count} requested`,
        );
      }
      const ops = taken.map((v) => createOp(subnetId, formatIp({ family: alloc.cidr.family, value: v }), req.owner, IpState.ACTIVE));
      try {
        return await this.records.commitMany<IpAddress>(ops, caller);
      } catch (err) {
        // Another replica may hold some of them: keep their bits only when retrying after a conflict.
        for (const v of taken) alloc.clear(v);
        if (this.exclusive || !isStatusError(err, Code.AlreadyExists) || attempt >= 3) throw err;
        await this.resync(subnetId);
      }
    }
  }

  /** Reads one address. */
  async get(ref: IpAddressRef): Promise<IpAddress> {
    const address = canonicalIp(ref.address, "address");
    return this.records.get<IpAddress>("ip", ipId(need(ref.subnetId, "subnet_id"), address), "address");
  }

  /** Changes an address's state and owner. */
  async update(ip: IpAddress, caller?: WriteCaller): Promise<IpAddress> {
    const cur = await this.get({ ...ip, $typeName: "nsmts.resources.v1.IpAddressRef" });
    const value = create(IpAddressSchema, {
      subnetId: cur.subnetId,
      address: cur.address,
      owner: ip.owner,
      state: ip.state === IpState.UNSPECIFIED ? cur.state : ip.state,
    });
    const id = ipId(cur.subnetId, cur.address);
    return this.records.commitOne<IpAddress>(
      {
        type: "update",
        kind: "ip",
        id,
        value,
        refs: [{ kind: "subnet", id: cur.subnetId }],
        revision: ip.revision,
      },
      caller,
    );
  }

  /** Releases several addresses, all or none (FailedPrecondition while a port holds one). */
  async bulkRelease(refs: readonly IpAddressRef[], caller?: WriteCaller): Promise<void> {
    const ips = refs.map((r, i) => ({
      subnetId: need(r.subnetId, `refs[${i}].subnet_id`),
      address: canonicalIp(r.address, `refs[${i}].address`),
      revision: r.revision,
    }));
    await this.records.commitChunked(
      ips.map((r) => ({ type: "delete", kind: "ip", id: ipId(r.subnetId, r.address), revision: r.revision })),
      caller,
    );
    for (const r of ips) this.forget(r.subnetId, r.address);
  }

  /** Allocates `address`, or the next free one when it is empty; `fields` name the request fields in errors. */
  async allocate(
    subnetId: string,
    address: string,
    owner: string,
    state: IpState,
    fields: { subnet: string; address: string } = { subnet: "subnet_id", address: "address" },
    caller?: WriteCaller,
  ): Promise<IpAddress> {
    need(subnetId, fields.subnet);
    if (address !== "") {
      const alloc = await this.allocator(subnetId, fields.subnet);
      const ip = requireIp(address, fields.address);
      alloc.check(ip, fields.address);
      const text = formatIp(ip);
      // A shared store decides by itself: this replica's bit may be stale (released elsewhere).
      const fresh = alloc.mark(ip.value);
      if (!fresh && this.exclusive)
        fail(Code.AlreadyExists, `resources: ${fields.address}: ${text} is already allocated in subnet "${subnetId}"`);
      try {
        return await this.records.commitOne<IpAddress>(createOp(subnetId, text, owner, state), caller);
      } catch (err) {
        if (fresh && (this.exclusive || !isStatusError(err, Code.AlreadyExists))) alloc.clear(ip.value);
        if (isStatusError(err, Code.AlreadyExists))
          fail(Code.AlreadyExists, `resources: ${fields.address}: ${text} is already allocated in subnet "${subnetId}"`);
        throw err;
      }
    }
    let resynced = false;
    for (;;) {
      const alloc = await this.allocator(subnetId, fields.subnet);
      const v = alloc.take(!this.exclusive);
      if (v === undefined) {
        if (!this.exclusive && !resynced) {
          // Other replicas may have released addresses this bitmap still counts as taken.
          resynced = true;
          await this.resync(subnetId);
          continue;
        }
        fail(Code.ResourceExhausted, `resources: ${fields.subnet}: subnet "${subnetId}" (${formatCidr(alloc.cidr)}) has no free address`);
      }
      try {
        return await this.records.commitOne<IpAddress>(
          createOp(subnetId, formatIp({ family: alloc.cidr.family, value: v }), owner, state),
          caller,
        );
      } catch (err) {
        // Taken by another replica: keep the bit (it is taken) and try the next one.
        if (!this.exclusive && isStatusError(err, Code.AlreadyExists)) {
          this.conflicts++;
          continue;
        }
        alloc.clear(v);
        throw err;
      }
    }
  }

  /** Clears a released address's bit, when its subnet's bitmap is loaded. */
  forget(subnetId: string, address: string): void {
    const ip = parseIp(address);
    if (ip !== undefined) this.subnets.get(subnetId)?.clear(ip.value);
  }

  /** Drops a deleted subnet's bitmap, so a re-created subnet of that id is loaded afresh. */
  dropSubnet(subnetId: string): void {
    this.subnets.delete(subnetId);
  }

  /** The subnet's allocator, loaded once (under the subnet's lock) from the subnet and its allocated addresses. */
  private async allocator(subnetId: string, field: string): Promise<SubnetAllocator> {
    return (
      this.subnets.get(subnetId) ??
      this.locks.run(`subnet/${subnetId}`, async () => this.subnets.get(subnetId) ?? this.load(subnetId, field))
    );
  }

  private async resync(subnetId: string): Promise<void> {
    await this.locks.run(`subnet/${subnetId}`, async () => {
      this.subnets.delete(subnetId);
      await this.load(subnetId, "subnet_id");
    });
  }

  private async load(subnetId: string, field: string): Promise<SubnetAllocator> {
    // The feed starts before the load; a change that lands while loading may be missed, which costs at most a
    // conflict (the store refuses a taken address) or one resync (a released one looks taken).
    await Promise.all([
      // Deleted elsewhere: drop the bitmap so a re-created subnet of that id is loaded afresh.
      this.feeds.follow("subnet", (id, deleted) => {
        if (deleted) this.dropSubnet(id);
      }),
      this.feeds.follow("ip", (id, deleted) => {
        const slash = id.lastIndexOf("/");
        const alloc = this.subnets.get(id.slice(0, slash));
        const ip = parseIp(id.slice(slash + 1));
        if (alloc === undefined || ip === undefined) return;
        if (deleted) alloc.clear(ip.value);
        else alloc.mark(ip.value);
      }),
    ]);
    const s = await this.records.get<Subnet>("subnet", subnetId, field);
    const cidr = requireCidr(s.cidr, "cidr");
    const gateway = s.gatewayIp === "" ? undefined : requireIp(s.gatewayIp, "gateway_ip").value;
    const pools: Array<[bigint, bigint]> =
      s.allocationPools.length === 0
        ? [[cidr.base, cidr.base + cidr.size - 1n]]
        : s.allocationPools.map((p) => [requireIp(p.start, "start").value, requireIp(p.end, "end").value]);
    const alloc = new SubnetAllocator(subnetId, cidr, gateway, pools);
    for (const r of await this.records.store.list("ip", { prefix: `${subnetId}/` })) {
      const ip = parseIp((r.value as IpAddress).address);
      if (ip !== undefined) alloc.mark(ip.value);
    }
    this.subnets.set(subnetId, alloc);
    return alloc;
  }
}

function createOp(subnetId: string, address: string, owner: string, state: IpState): StoreOp {
  const value = create(IpAddressSchema, { subnetId, address, owner, state: state === IpState.UNSPECIFIED ? IpState.ACTIVE : state });
  return { type: "create", kind: "ip", id: ipId(subnetId, address), value, refs: [{ kind: "subnet", id: subnetId }] };
}
