/** Security groups and route tables: records whose rules and routes are validated and stored in canonical form. */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { type RouteTable, RouteTableSchema, type SecurityGroup, SecurityGroupSchema } from "@nsm-ts/api/resources";
import { Code, fail } from "@nsm-ts/base/status";
import { formatCidr, formatIp, requireCidr, requireIp } from "../address.js";
import type { RecordRef, StoreOp, WriteCaller } from "../store.js";
import { need } from "./fields.js";
import type { Records } from "./records.js";

/** The security group manager (internal; `ResourceManagers` serves it). */
export class SecurityGroups {
  constructor(private readonly records: Records) {}

  /** Creates a security group (rule ids generated when empty). */
  async create(g: SecurityGroup, caller?: WriteCaller): Promise<SecurityGroup> {
    return this.records.commitOne<SecurityGroup>(securityGroupOp(g, "create"), caller);
  }

  /** Creates several security groups, all or none. */
  async bulkCreate(items: readonly SecurityGroup[], caller?: WriteCaller): Promise<SecurityGroup[]> {
    return this.records.commitMany<SecurityGroup>(
      items.map((g, i) => securityGroupOp(g, "create", `items[${i}].`)),
      caller,
    );
  }

  /** Replaces a security group's name and rules. */
  async update(g: SecurityGroup, caller?: WriteCaller): Promise<SecurityGroup> {
    await this.records.get<SecurityGroup>("securitygroup", need(g.id, "id"));
    return this.records.commitOne<SecurityGroup>(securityGroupOp(g, "update"), caller);
  }
}

function securityGroupOp(g: SecurityGroup, type: "create" | "update", at = ""): StoreOp {
  const id = g.id || randomUUID();
  const rules = g.rules.map((r, i) => {
    const f = `${at}rules[${i}]`;
    const direction = r.direction === "" ? "ingress" : r.direction.toLowerCase();
    if (direction !== "ingress" && direction !== "egress")
      fail(Code.InvalidArgument, `resources: ${f}.direction: "${r.direction}" is neither ingress nor egress`);
    const etherType = r.etherType === "" ? "IPv4" : r.etherType;
    if (etherType !== "IPv4" && etherType !== "IPv6")
      fail(Code.InvalidArgument, `resources: ${f}.ether_type: "${r.etherType}" is neither IPv4 nor IPv6`);
    if (r.portRangeMax > 65535 || r.portRangeMin > r.portRangeMax) {
      fail(Code.InvalidArgument, `resources: ${f}.port_range_max: ${r.portRangeMin}..${r.portRangeMax} is not a port range`);
    }
    let remote = "";
    if (r.remoteIpPrefix !== "") {
      const c = requireCidr(r.remoteIpPrefix, `${f}.remote_ip_prefix`);
      if ((c.family === 4) !== (etherType === "IPv4"))
        fail(Code.InvalidArgument, `resources: ${f}.remote_ip_prefix: ${r.remoteIpPrefix} is not ${etherType}`);
      remote = formatCidr(c);
    }
    return { ...r, id: r.id || randomUUID(), direction, etherType, remoteIpPrefix: remote };
  });
  const value = create(SecurityGroupSchema, { id, name: g.name, rules });
  return type === "create"
    ? { type, kind: "securitygroup", id, value, refs: [] }
    : { type, kind: "securitygroup", id, value, refs: [], revision: g.revision };
}

/** The route table manager (internal; `ResourceManagers` serves it). */
export class RouteTables {
  constructor(private readonly records: Records) {}

  /** Creates a route table. */
  async create(t: RouteTable, caller?: WriteCaller): Promise<RouteTable> {
    return this.records.commitOne<RouteTable>(await this.op(t, "create"), caller);
  }

  /** Creates several route tables, all or none. */
  async bulkCreate(items: readonly RouteTable[], caller?: WriteCaller): Promise<RouteTable[]> {
    const ops: StoreOp[] = [];
    for (const [i, t] of items.entries()) ops.push(await this.op(t, "create", `items[${i}].`));
    return this.records.commitMany<RouteTable>(ops, caller);
  }

  /** Replaces a route table's name and routes. */
  async update(t: RouteTable, caller?: WriteCaller): Promise<RouteTable> {
    await this.records.get<RouteTable>("routetable", need(t.id, "id"));
    return this.records.commitOne<RouteTable>(await this.op(t, "update"), caller);
  }

  private async op(t: RouteTable, type: "create" | "update", at = ""): Promise<StoreOp> {
    const id = t.id || randomUUID();
    if (t.networkId !== "") await this.records.requireExists("network", t.networkId, `${at}network_id`);
    const routes = t.routes.map((r, i) => {
      const f = `${at}routes[${i}]`;
      const dst = requireCidr(need(r.destination, `${f}.destination`), `${f}.destination`);
      let nextHop = "";
      if (r.nextHop !== "") {
        const nh = requireIp(r.nextHop, `${f}.next_hop`);
        if (nh.family !== dst.family)
          fail(Code.InvalidArgument, `resources: ${f}.next_hop: ${r.nextHop} is not of the destination's family`);
        nextHop = formatIp(nh);
      }
      return { destination: formatCidr(dst), nextHop, priority: r.priority };
    });
    const value = create(RouteTableSchema, { id, name: t.name, networkId: t.networkId, routes });
    const refs: RecordRef[] = t.networkId === "" ? [] : [{ kind: "network", id: t.networkId }];
    return type === "create"
      ? { type, kind: "routetable", id, value, refs }
      : { type, kind: "routetable", id, value, refs, revision: t.revision };
  }
}
