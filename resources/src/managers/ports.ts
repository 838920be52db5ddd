/**
 * Ports: a port binds IP addresses of its network's subnets and a MAC. It is created in steps (addresses, MAC,
 * record), each undone in reverse order when a later one fails, and deleted together with what it binds.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { type IpAddress, IpState, type Port, PortSchema, type Subnet } from "@nsm-ts/api/resources";
import type { Logger } from "@nsm-ts/base/log";
import { Code, fail } from "@nsm-ts/base/status";
import { requireMac } from "../address.js";
import type { RecordRef, StoreOp, WriteCaller } from "../store.js";
import { ipId, need } from "./fields.js";
import type { IpAddresses } from "./ips.js";
import type { MacAddresses } from "./macs.js";
import type { Records } from "./records.js";

/** The port manager (internal; `ResourceManagers` serves it). */
export class Ports {
  constructor(
    private readonly records: Records,
    private readonly ips: IpAddresses,
    private readonly macs: MacAddresses,
    private readonly log: Logger,
  ) {}

  /**
   * Creates a port in steps: each fixed IP (any free one when `ip_address` is empty; by default one from the
   * network's first subnet), then the MAC, then the record. A failing step undoes every earlier one.
   */
  async create(p: Port, at = "", caller?: WriteCaller): Promise<Port> {
    const id = p.id || randomUUID();
    const networkId = need(p.networkId, `${at}network_id`);
    await this.records.requireExists("network", networkId, `${at}network_id`);
    for (const [i, sg] of p.securityGroupIds.entries())
      await this.records.requireExists("securitygroup", sg, `${at}security_group_ids[${i}]`);
    let fixed = p.fixedIps.map((f) => ({ subnetId: f.subnetId, ipAddress: f.ipAddress }));
    if (fixed.length === 0) {
      const first = (await this.records.store.list("subnet", { filter: (r) => (r.value as Subnet).networkId === networkId, limit: 1 }))[0];
      if (first !== undefined) fixed = [{ subnetId: first.id, ipAddress: "" }];
    }
    for (const [i, f] of fixed.entries()) {
      const field = `${at}fixed_ips[${i}].subnet_id`;
      const subnet = await this.records.get<Subnet>("subnet", need(f.subnetId, field), field);
      if (subnet.networkId !== networkId)
        fail(Code.InvalidArgument, `resources: ${field}: subnet "${subnet.id}" is in network "${subnet.networkId}", not "${networkId}"`);
    }
    if ((await this.records.store.get("port", id)) !== undefined)
      fail(Code.AlreadyExists, `resources: ${at}id: port "${id}" already exists`);

    const undo: Array<{ what: string; run: () => Promise<void> }> = [];
    try {
      const ips: IpAddress[] = [];
      for (const [i, f] of fixed.entries()) {
        const ip = await this.ips.allocate(
          f.subnetId,
          f.ipAddress,
          id,
          IpState.ACTIVE,
          {
            subnet: `${at}fixed_ips[${i}].subnet_id`,
            address: `${at}fixed_ips[${i}].ip_address`,
          },
          caller,
        );
        ips.push(ip);
        undo.push({
          what: `ip ${ip.address}`,
          run: () => this.ips.bulkRelease([{ ...ip, $typeName: "nsmts.resources.v1.IpAddressRef", revision: "" }], caller),
        });
      }
      const mac = await this.macs.allocate(p.macAddress, "", id, `${at}mac_address`, caller);
      undo.push({
        what: `mac ${mac.address}`,
        run: () => this.macs.bulkRelease([{ address: mac.address, revision: "", $typeName: "nsmts.resources.v1.MacAddressRef" }], caller),
      });
      const value = create(PortSchema, {
        id,
        name: p.name,
        networkId,
        fixedIps: ips.map((ip) => ({ subnetId: ip.subnetId, ipAddress: ip.address })),
        macAddress: mac.address,
        owner: p.owner,
        securityGroupIds: p.securityGroupIds,
      });
      return await this.records.commitOne<Port>({ type: "create", kind: "port", id, value, refs: portRefs(value) }, caller);
    } catch (err) {
      for (const step of undo.reverse()) {
        try {
          await step.run();
        } catch (e) {
          this.log.error({ err: e, port: id, step: step.what }, "resources: port rollback step failed; the record stays behind");
        }
      }
      throw err;
    }
  }

  /** Creates several ports; when one fails, the ones already created are deleted again. */
  async bulkCreate(items: readonly Port[], caller?: WriteCaller): Promise<Port[]> {
    const done: Port[] = [];
    try {
      for (const [i, p] of items.entries()) done.push(await this.create(p, `items[${i}].`, caller));
      return done;
    } catch (err) {
      for (const p of done.reverse()) {
        await this.delete([{ id: p.id, revision: "" }], caller).catch((e: unknown) =>
          this.log.error({ err: e, port: p.id }, "resources: bulk port rollback failed"),
        );
      }
      throw err;
    }
  }

  /** Changes a port's name, owner and security groups; its addresses and MAC stay. */
  async update(p: Port, caller?: WriteCaller): Promise<Port> {
    const cur = await this.records.get<Port>("port", need(p.id, "id"));
    for (const [i, sg] of p.securityGroupIds.entries()) await this.records.requireExists("securitygroup", sg, `security_group_ids[${i}]`);
    const value = create(PortSchema, { ...cur, name: p.name, owner: p.owner, securityGroupIds: p.securityGroupIds, revision: "" });
    return this.records.commitOne<Port>(
      { type: "update", kind: "port", id: cur.id, value, refs: portRefs(value), revision: p.revision },
      caller,
    );
  }

  /** Deletes ports together with their addresses and MACs, all or none. */
  async delete(refs: ReadonlyArray<{ id: string; revision: string }>, caller?: WriteCaller): Promise<void> {
    const ops: StoreOp[] = [];
    const ports: Port[] = [];
    for (const [i, r] of refs.entries()) {
      const port = await this.records.get<Port>("port", need(r.id, refs.length > 1 ? `refs[${i}].id` : "id"));
      ports.push(port);
      ops.push({ type: "delete", kind: "port", id: port.id, revision: r.revision });
      for (const f of port.fixedIps) ops.push({ type: "delete", kind: "ip", id: ipId(f.subnetId, f.ipAddress) });
      if (port.macAddress !== "") ops.push({ type: "delete", kind: "mac", id: port.macAddress });
    }
    await this.records.commitChunked(ops, caller);
    for (const port of ports) {
      for (const f of port.fixedIps) this.ips.forget(f.subnetId, f.ipAddress);
      this.macs.forget(requireMac(port.macAddress, "mac_address"));
    }
  }
}

function portRefs(p: Port): RecordRef[] {
  const refs: RecordRef[] = [{ kind: "network", id: p.networkId }];
  const subnets = new Set(p.fixedIps.map((f) => f.subnetId));
  for (const s of subnets) refs.push({ kind: "subnet", id: s });
  for (const f of p.fixedIps) refs.push({ kind: "ip", id: ipId(f.subnetId, f.ipAddress) });
  if (p.macAddress !== "") refs.push({ kind: "mac", id: p.macAddress });
  for (const sg of new Set(p.securityGroupIds)) refs.push({ kind: "securitygroup", id: sg });
  return refs;
}
