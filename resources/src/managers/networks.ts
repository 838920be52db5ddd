/**
 * Networks and their subnets. A network's CIDR, when it has one, bounds its subnets; subnets of one network
 * never overlap; a subnet's gateway and allocation pools lie inside it and never change after creation.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { type Network, NetworkSchema, type Subnet, SubnetSchema } from "@nsm-ts/api/resources";
import { Code, fail } from "@nsm-ts/base/status";
import { cidrContains, cidrCovers, cidrOverlaps, formatCidr, formatIp, requireCidr, requireIp } from "../address.js";
import type { RecordRef, StoreOp, WriteCaller } from "../store.js";
import { formatCidrOf, need } from "./fields.js";
import type { Records } from "./records.js";

/** The network manager (internal; `ResourceManagers` serves it). */
export class Networks {
  constructor(private readonly records: Records) {}

  /** Creates a network (id generated when empty). */
  async create(n: Network, caller?: WriteCaller): Promise<Network> {
    return this.records.commitOne<Network>(networkOp(n), caller);
  }

  /** Creates several networks, all or none. */
  async bulkCreate(items: readonly Network[], caller?: WriteCaller): Promise<Network[]> {
    return this.records.commitMany<Network>(
      items.map((n, i) => networkOp(n, `items[${i}].`)),
      caller,
    );
  }

  /** Renames a network; its CIDR cannot change. */
  async update(n: Network, caller?: WriteCaller): Promise<Network> {
    const cur = await this.records.get<Network>("network", n.id);
    const cidr = n.cidr === "" ? cur.cidr : formatCidrOf(n.cidr, "cidr");
    if (cidr !== cur.cidr) fail(Code.InvalidArgument, `resources: cidr: the CIDR of network "${n.id}" cannot change`);
    const value = create(NetworkSchema, { id: cur.id, name: n.name, cidr });
    return this.records.commitOne<Network>({ type: "update", kind: "network", id: cur.id, value, refs: [], revision: n.revision }, caller);
  }
}

function networkOp(n: Network, at = ""): StoreOp {
  const id = n.id || randomUUID();
  const cidr = n.cidr === "" ? "" : formatCidrOf(n.cidr, `${at}cidr`);
  return { type: "create", kind: "network", id, value: create(NetworkSchema, { id, name: n.name, cidr }), refs: [] };
}

/** The subnet manager (internal; `ResourceManagers` serves it). */
export class Subnets {
  constructor(private readonly records: Records) {}

  /** Creates a subnet of a network: CIDR inside the network's, not overlapping its other subnets. */
  async create(s: Subnet, caller?: WriteCaller): Promise<Subnet> {
    return this.records.commitOne<Subnet>(await this.createOp(s), caller);
  }

  /** Creates several subnets, all or none. */
  async bulkCreate(items: readonly Subnet[], caller?: WriteCaller): Promise<Subnet[]> {
    const ops: StoreOp[] = [];
    for (const [i, s] of items.entries()) ops.push(await this.createOp(s, `items[${i}].`));
    return this.records.commitMany<Subnet>(ops, caller);
  }

  /** Changes a subnet's name and route table; CIDR, gateway, pools and network cannot change. */
  async update(s: Subnet, caller?: WriteCaller): Promise<Subnet> {
    const cur = await this.records.get<Subnet>("subnet", s.id);
    const same = (field: string, a: string, b: string): void => {
      if (a !== "" && a !== b) fail(Code.InvalidArgument, `resources: ${field}: the ${field} of subnet "${s.id}" cannot change`);
    };
    same("network_id", s.networkId, cur.networkId);
    same("cidr", s.cidr === "" ? "" : formatCidrOf(s.cidr, "cidr"), cur.cidr);
    same("gateway_ip", s.gatewayIp === "" ? "" : formatIp(requireIp(s.gatewayIp, "gateway_ip")), cur.gatewayIp);
    if (
      s.allocationPools.length > 0 &&
      JSON.stringify(s.allocationPools.map((p) => [p.start, p.end])) !== JSON.stringify(cur.allocationPools.map((p) => [p.start, p.end]))
    ) {
      fail(Code.InvalidArgument, `resources: allocation_pools: the allocation_pools of subnet "${s.id}" cannot change`);
    }
    if (s.routeTableId !== "") await this.records.requireExists("routetable", s.routeTableId, "route_table_id");
    const value = create(SubnetSchema, { ...cur, name: s.name, routeTableId: s.routeTableId, revision: "" });
    return this.records.commitOne<Subnet>(
      {
        type: "update",
        kind: "subnet",
        id: cur.id,
        value,
        refs: subnetRefs(value),
        revision: s.revision,
      },
      caller,
    );
  }

  private async createOp(s: Subnet, at = ""): Promise<StoreOp> {
    const id = s.id || randomUUID();
    const networkId = need(s.networkId, `${at}network_id`);
    const cidr = requireCidr(need(s.cidr, `${at}cidr`), `${at}cidr`);
    const network = await this.records.get<Network>("network", networkId, `${at}network_id`);
    if (network.cidr !== "" && !cidrCovers(requireCidr(network.cidr, "network.cidr"), cidr)) {
      fail(Code.InvalidArgument, `resources: ${at}cidr: ${formatCidr(cidr)} is outside network "${networkId}" (${network.cidr})`);
    }
    const siblings = await this.records.store.list("subnet", { filter: (r) => (r.value as Subnet).networkId === networkId });
    for (const sib of siblings) {
      const other = sib.value as Subnet;
      if (cidrOverlaps(requireCidr(other.cidr, "cidr"), cidr)) {
        fail(
          Code.InvalidArgument,
          `resources: ${at}cidr: ${formatCidr(cidr)} overlaps subnet "${other.id}" (${other.cidr}) of network "${networkId}"`,
        );
      }
    }
    let gateway = "";
    if (s.gatewayIp !== "") {
      const g = requireIp(s.gatewayIp, `${at}gateway_ip`);
      if (!cidrContains(cidr, g))
        fail(Code.InvalidArgument, `resources: ${at}gateway_ip: ${s.gatewayIp} is outside the subnet ${formatCidr(cidr)}`);
      gateway = formatIp(g);
    } else if (cidr.size >= 4n) {
      gateway = formatIp({ family: cidr.family, value: cidr.base + 1n });
    }
    const pools = s.allocationPools.map((p, i) => {
      const f = `${at}allocation_pools[${i}]`;
      const start = requireIp(p.start, `${f}.start`);
      const end = requireIp(p.end, `${f}.end`);
      if (!cidrContains(cidr, start))
        fail(Code.InvalidArgument, `resources: ${f}.start: ${p.start} is outside the subnet ${formatCidr(cidr)}`);
      if (!cidrContains(cidr, end)) fail(Code.InvalidArgument, `resources: ${f}.end: ${p.end} is outside the subnet ${formatCidr(cidr)}`);
      if (end.value < start.value) fail(Code.InvalidArgument, `resources: ${f}.end: ${p.end} is below start ${p.start}`);
      return { start: formatIp(start), end: formatIp(end) };
    });
    if (s.routeTableId !== "") await this.records.requireExists("routetable", s.routeTableId, `${at}route_table_id`);
    const value = create(SubnetSchema, {
      id,
      name: s.name,
      networkId,
      cidr: formatCidr(cidr),
      gatewayIp: gateway,
      allocationPools: pools,
      ipVersion: cidr.family,
      routeTableId: s.routeTableId,
    });
    return { type: "create", kind: "subnet", id, value, refs: subnetRefs(value) };
  }
}

function subnetRefs(s: Subnet): RecordRef[] {
  const refs: RecordRef[] = [{ kind: "network", id: s.networkId }];
  if (s.routeTableId !== "") refs.push({ kind: "routetable", id: s.routeTableId });
  return refs;
}
