/**
 * How an NSE registration describes a backend: labels of the service in `network_service_labels[<service>]`.
 * `nsmts.io/address` makes the NSE a backend of that service (no address: not a backend); upstream's `nodeName`
 * label names its node; the Kubernetes zone label its zone. services/README.md documents the format.
 */
import { create } from "@bufbuild/protobuf";
import { Label } from "@nsm-ts/api/constants";
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { type Backend, BackendSchema, Protocol, type ServicePort, ServicePortSchema } from "@nsm-ts/api/services";
import { Code, fail } from "@nsm-ts/base/status";
import { requireAddress, requirePort } from "../names.js";

/** The label keys the registry source reads. */
export const BackendLabel = {
  /** The instance's address (its vL3 address); required. */
  ADDRESS: "nsmts.io/address",
  /** Ports served: comma list of `[name=]port[/tcp|udp|sctp]`, e.g. `http=8080,dns=53/udp`; default: every service port. */
  PORTS: "nsmts.io/ports",
  /** Relative weight 1..65535. */
  WEIGHT: "nsmts.io/weight",
  /** Node of the instance (upstream's label). */
  NODE: Label.NODE_NAME,
  /** Zone of the instance (the Kubernetes well-known label). */
  ZONE: "topology.kubernetes.io/zone",
} as const;

const PROTOCOLS: Record<string, Protocol> = { tcp: Protocol.TCP, udp: Protocol.UDP, sctp: Protocol.SCTP };

/** Parses `nsmts.io/ports` into service ports (name, port, protocol); fails naming the label. */
export function parsePorts(raw: string, field: string = BackendLabel.PORTS): ServicePort[] {
  const out: ServicePort[] = [];
  for (const [i, item] of raw.split(",").entries()) {
    const m = /^\s*(?:([A-Za-z0-9][A-Za-z0-9_.-]*)=)?([0-9]{1,5})(?:\/([a-z]+))?\s*$/.exec(item);
    const protocol = m?.[3] === undefined ? Protocol.TCP : PROTOCOLS[m[3]];
    if (m === null || protocol === undefined)
      fail(Code.InvalidArgument, `services: ${field}[${i}]: ${JSON.stringify(item)} is not [name=]port[/tcp|udp|sctp]`);
    out.push(create(ServicePortSchema, { name: m[1] ?? "", port: requirePort(Number(m[2]), `${field}[${i}]`), protocol }));
  }
  return out;
}

/** One service's backend described by an NSE, with the ports it declares; undefined when it is not a backend. */
export interface NseBackend {
  readonly backend: Backend;
  readonly ports: ServicePort[];
}

/** The backends an NSE describes, one per service it lists with an address label. Throws on malformed labels. */
export function backendsOf(nse: NetworkServiceEndpoint, source: string): NseBackend[] {
  const out: NseBackend[] = [];
  for (const service of nse.networkServiceNames) {
    const labels = nse.networkServiceLabels[service]?.labels ?? {};
    const address = labels[BackendLabel.ADDRESS];
    if (address === undefined || address === "") continue;
    requireAddress(address, `network_service_labels[${service}].${BackendLabel.ADDRESS}`);
    const portsRaw = labels[BackendLabel.PORTS] ?? "";
    const ports = portsRaw === "" ? [] : parsePorts(portsRaw, `network_service_labels[${service}].${BackendLabel.PORTS}`);
    const weightRaw = labels[BackendLabel.WEIGHT] ?? "";
    const weight = weightRaw === "" ? 0 : Number(weightRaw);
    if (!Number.isInteger(weight) || weight < 0 || weight > 65535) {
      fail(
        Code.InvalidArgument,
        `services: network_service_labels[${service}].${BackendLabel.WEIGHT}: ${JSON.stringify(weightRaw)} is not 1..65535`,
      );
    }
    const rest = Object.fromEntries(Object.entries(labels).filter(([k]) => !k.startsWith("nsmts.io/")));
    out.push({
      backend: create(BackendSchema, {
        service,
        source,
        name: nse.name,
        address,
        ports: ports.map((p) => ({ name: p.name, port: p.port })),
        node: labels[BackendLabel.NODE] ?? "",
        zone: labels[BackendLabel.ZONE] ?? "",
        labels: rest,
        weight,
      }),
      ports,
    });
  }
  return out;
}
