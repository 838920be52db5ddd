/**
 * Virtual (public) IPs: an address allocated from a subnet and bound to ports (a floating IP on one port, a
 * shared address on several). Created in two steps (the address, then the record, the address released again
 * when the record fails) and deleted with its address in one commit. A bound port cannot be deleted.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { IpState, type VirtualIp, VirtualIpSchema } from "@nsm-ts/api/resources";
import type { Logger } from "@nsm-ts/base/log";
import { Code, fail } from "@nsm-ts/base/status";
import type { RecordRef, StoreOp, WriteCaller } from "../store.js";
import { ipId, need } from "./fields.js";
import type { IpAddresses } from "./ips.js";
import type { Records } from "./records.js";

/** The virtual IP manager (`ResourceManagers.virtualIps`). */
export class VirtualIps {
  constructor(
    private readonly records: Records,
    private readonly ips: IpAddresses,
    private readonly log: Logger,
  ) {}

  /** Allocates the address (the given one or any free one) and creates the record bound to `port_ids`. */
  async create(v: VirtualIp, caller?: WriteCaller, at = ""): Promise<VirtualIp> {
    const id = v.id || randomUUID();
    const subnetId = need(v.subnetId, `${at}subnet_id`);
    await this.records.requireExists("subnet", subnetId, `${at}subnet_id`);
    await this.requirePorts(v.portIds, at);
    if ((await this.records.store.get("vip", id)) !== undefined) fail(Code.AlreadyExists, `resources: ${at}id: vip "${id}" already exists`);
    const ip = await this.ips.allocate(
      subnetId,
      v.address,
      `vip:${id}`,
      IpState.ACTIVE,
      { subnet: `${at}subnet_id`, address: `${at}address` },
      caller,
    );
    const value = create(VirtualIpSchema, {
      id,
      name: v.name,
      subnetId,
      address: ip.address,
      portIds: [...new Set(v.portIds)],
      owner: v.owner,
    });
    try {
      return await this.records.commitOne<VirtualIp>({ type: "create", kind: "vip", id, value, refs: vipRefs(value) }, caller);
    } catch (err) {
      await this.ips
        .bulkRelease([{ subnetId, address: ip.address, revision: "", $typeName: "nsmts.resources.v1.IpAddressRef" }], caller)
        .catch((e: unknown) => this.log.error({ err: e, vip: id }, "resources: releasing the address of a failed vip create failed"));
      throw err;
    }
  }

  /** Creates several virtual IPs; when one fails, the ones already created are deleted again. */
  async bulkCreate(items: readonly VirtualIp[], caller?: WriteCaller): Promise<VirtualIp[]> {
    const done: VirtualIp[] = [];
    try {
      for (const [i, v] of items.entries()) done.push(await this.create(v, caller, `items[${i}].`));
      return done;
    } catch (err) {
      await this.delete(
        done.map((v) => ({ id: v.id, revision: "" })),
        caller,
      ).catch((e: unknown) => this.log.error({ err: e }, "resources: bulk vip rollback failed"));
      throw err;
    }
  }

  /** Changes name, owner and bound ports (rebinding); subnet and address stay. */
  async update(v: VirtualIp, caller?: WriteCaller): Promise<VirtualIp> {
    const cur = await this.records.get<VirtualIp>("vip", need(v.id, "id"));
    if (v.address !== "" && v.address !== cur.address)
      fail(Code.InvalidArgument, `resources: address: the address of vip "${cur.id}" cannot change (delete and re-create it)`);
    if (v.subnetId !== "" && v.subnetId !== cur.subnetId)
      fail(Code.InvalidArgument, `resources: subnet_id: the subnet of vip "${cur.id}" cannot change`);
    await this.requirePorts(v.portIds, "");
    const value = create(VirtualIpSchema, { ...cur, name: v.name, owner: v.owner, portIds: [...new Set(v.portIds)], revision: "" });
    return this.records.commitOne<VirtualIp>(
      { type: "update", kind: "vip", id: cur.id, value, refs: vipRefs(value), revision: v.revision },
      caller,
    );
  }

  /** Deletes virtual IPs with their addresses, all or none. */
  async delete(refs: ReadonlyArray<{ id: string; revision: string }>, caller?: WriteCaller): Promise<void> {
    const ops: StoreOp[] = [];
    const gone: VirtualIp[] = [];
    for (const [i, r] of refs.entries()) {
      const v = await this.records.get<VirtualIp>("vip", need(r.id, refs.length > 1 ? `refs[${i}].id` : "id"));
      gone.push(v);
      ops.push({ type: "delete", kind: "vip", id: v.id, revision: r.revision });
      ops.push({ type: "delete", kind: "ip", id: ipId(v.subnetId, v.address) });
    }
    await this.records.commitChunked(ops, caller);
    for (const v of gone) this.ips.forget(v.subnetId, v.address);
  }

  private async requirePorts(portIds: readonly string[], at: string): Promise<void> {
    for (const [i, p] of portIds.entries()) await this.records.requireExists("port", need(p, `${at}port_ids[${i}]`), `${at}port_ids[${i}]`);
  }
}

function vipRefs(v: VirtualIp): RecordRef[] {
  return [
    { kind: "subnet", id: v.subnetId },
    { kind: "ip", id: ipId(v.subnetId, v.address) },
    ...v.portIds.map((p): RecordRef => ({ kind: "port", id: p })),
  ];
}
