/**
 * DNS records: a name and its addresses, given or those of a port (its fixed IPs, which never change while the
 * port exists; the port cannot be deleted while a record names it). Names are stored lower-case with a trailing
 * dot; the id defaults to the name, so one create per name unless ids are chosen.
 */
import { create } from "@bufbuild/protobuf";
import { type DnsRecord, DnsRecordSchema, type Port } from "@nsm-ts/api/resources";
import { Code, fail } from "@nsm-ts/base/status";
import type { RecordRef, StoreOp, WriteCaller } from "../store.js";
import { canonicalIp, need } from "./fields.js";
import type { Records } from "./records.js";

/** TTL of records that set none. */
export const DEFAULT_DNS_TTL_SECONDS = 60;

/** A DNS name in canonical form (lower-case, trailing dot); InvalidArgument naming `field` unless it is one. */
export function canonicalDnsName(raw: string, field: string): string {
  const name = need(raw, field).toLowerCase().replace(/\.?$/, ".");
  const labels = name.slice(0, -1).split(".");
  if (name.length > 254 || labels.some((l) => !/^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/.test(l)))
    fail(Code.InvalidArgument, `resources: ${field}: "${raw}" is not a DNS name (labels of letters, digits, '-' and '_', 1..63 each)`);
  return name;
}

/** The DNS record manager (`ResourceManagers.dnsRecords`). */
export class DnsRecords {
  constructor(private readonly records: Records) {}

  /** Creates a record (id = the name when empty). */
  async create(d: DnsRecord, caller?: WriteCaller): Promise<DnsRecord> {
    return this.records.commitOne<DnsRecord>(await this.op(d, "create"), caller);
  }

  /** Creates several records, all or none. */
  async bulkCreate(items: readonly DnsRecord[], caller?: WriteCaller): Promise<DnsRecord[]> {
    const ops: StoreOp[] = [];
    for (const [i, d] of items.entries()) ops.push(await this.op(d, "create", `items[${i}].`));
    return this.records.commitMany<DnsRecord>(ops, caller);
  }

  /** Replaces a record's name, port or addresses and TTL. */
  async update(d: DnsRecord, caller?: WriteCaller): Promise<DnsRecord> {
    await this.records.get<DnsRecord>("dns", need(d.id, "id"));
    return this.records.commitOne<DnsRecord>(await this.op(d, "update"), caller);
  }

  private async op(d: DnsRecord, type: "create" | "update", at = ""): Promise<StoreOp> {
    const name = canonicalDnsName(d.name, `${at}name`);
    const id = d.id || name;
    let addresses: string[];
    const refs: RecordRef[] = [];
    if (d.portId !== "") {
      const port = await this.records.get<Port>("port", d.portId, `${at}port_id`);
      if (d.addresses.length > 0) fail(Code.InvalidArgument, `resources: ${at}addresses: a record of a port takes the port's addresses`);
      addresses = port.fixedIps.map((f) => f.ipAddress);
      refs.push({ kind: "port", id: port.id });
    } else {
      if (d.addresses.length === 0) fail(Code.InvalidArgument, `resources: ${at}addresses: required without port_id`);
      addresses = d.addresses.map((a, i) => canonicalIp(a, `${at}addresses[${i}]`));
    }
    if (d.ttlSeconds > 86_400) fail(Code.InvalidArgument, `resources: ${at}ttl_seconds: ${d.ttlSeconds} is over a day`);
    const value = create(DnsRecordSchema, {
      id,
      name,
      portId: d.portId,
      addresses: [...new Set(addresses)],
      ttlSeconds: d.ttlSeconds || DEFAULT_DNS_TTL_SECONDS,
    });
    return type === "create" ? { type, kind: "dns", id, value, refs } : { type, kind: "dns", id, value, refs, revision: d.revision };
  }
}
