/**
 * Test data for the transport tests: fully populated NSM messages twice, once as protobuf-es messages and
 * once in the shape `@grpc/proto-loader` produces (keepCase, longs and enums as strings, defaults on), so
 * interop tests compare against an independently decoded form. The fixture of the typed layer's tests (a
 * server with typed clients, status expectations) comes from harness.ts.
 */
import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { isReflectMessage, reflect } from "@bufbuild/protobuf/reflect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { PrefixRequestSchema, PrefixResponseSchema, Type as PrefixType } from "@nsm-ts/api/ipam";
import {
  ConnectionEventSchema,
  ConnectionEventType,
  ConnectionSchema,
  IpFamily_Family,
  MonitorScopeSelectorSchema,
  NetworkServiceRequestSchema,
  State,
} from "@nsm-ts/api/networkservice";
import {
  NetworkServiceEndpointQuerySchema,
  NetworkServiceEndpointResponseSchema,
  NetworkServiceEndpointSchema,
  NetworkServiceQuerySchema,
  NetworkServiceResponseSchema,
  NetworkServiceSchema,
} from "@nsm-ts/api/registry";

export { callsFromWorker, type WorkerCallsOptions, type WorkerCallsResult } from "./calls-worker.js";
export {
  aborted,
  deferred,
  expectStatus,
  type GrpcHarness,
  type GrpcStarted,
  type GrpcStartOptions,
  grpcHarness,
} from "./harness.js";

/** A plain object as proto-loader decodes it. */
export type Plain = { [key: string]: unknown };

const expires = new Date("2026-04-07T10:14:14.123Z");
const registered = new Date("2026-04-07T10:00:00.456Z");

/** Every field of a Connection set, nested messages included. */
export const fullConnection = create(ConnectionSchema, {
  id: "conn-1",
  networkService: "my-service",
  mechanism: { cls: "LOCAL", type: "KERNEL", parameters: { inodeURL: "file:///proc/1/ns/net", name: "nsm-1" } },
  context: {
    ipContext: {
      srcIpAddrs: ["169.254.0.1/32"],
      dstIpAddrs: ["169.254.0.2/32"],
      srcIpRequired: true,
      dstIpRequired: true,
      srcRoutes: [{ prefix: "169.254.0.2/32", nextHop: "169.254.0.2" }],
      dstRoutes: [{ prefix: "169.254.0.1/32", nextHop: "169.254.0.1" }],
      excludedPrefixes: ["198.51.100.0/24"],
      ipNeighbors: [{ ip: "169.254.0.2", hardwareAddress: "02:00:00:00:00:02" }],
      extraPrefixRequest: [{ addrFamily: { family: IpFamily_Family.IPV6 }, prefixLen: 64, requiredNumber: 1, requestedNumber: 2 }],
      extraPrefixes: ["fd00::/64"],
      policies: [
        {
          from: "169.254.0.1/32",
          proto: "6",
          dstPort: "80",
          srcPort: "1000-2000",
          routes: [{ prefix: "203.0.113.0/24", nextHop: "169.254.0.2" }],
        },
      ],
    },
    dnsContext: { configs: [{ dnsServerIps: ["198.51.100.53"], searchDomains: ["svc.example"] }] },
    ethernetContext: { srcMac: "02:00:00:00:00:01", dstMac: "02:00:00:00:00:02", vlanTag: 100 },
    extraContext: { k: "v" },
    MTU: 1446,
  },
  labels: { nodeName: "node-1", podName: "pod-1" },
  path: {
    index: 1,
    pathSegments: [
      { name: "nsc", id: "conn-0", token: "tok-0", expires: timestampFromDate(expires), metrics: { client_interface: "KERNEL/nsm-1" } },
      { name: "nsmgr", id: "conn-1", token: "tok-1", expires: timestampFromDate(expires), metrics: { server_interface: "KERNEL/nsm-2" } },
    ],
  },
  networkServiceEndpointName: "nse-1",
  payload: "IP",
  state: State.REFRESH_REQUESTED,
});

const tsPlain = (d: Date): Plain => ({ seconds: String(Math.floor(d.getTime() / 1000)), nanos: (d.getTime() % 1000) * 1e6 });

/** `fullConnection` as proto-loader decodes it (proto field names, `MTU`, `nextHop`). */
export const fullConnectionPlain: Plain = {
  id: "conn-1",
  network_service: "my-service",
  mechanism: { cls: "LOCAL", type: "KERNEL", parameters: { inodeURL: "file:///proc/1/ns/net", name: "nsm-1" } },
  context: {
    ip_context: {
      src_ip_addrs: ["169.254.0.1/32"],
      dst_ip_addrs: ["169.254.0.2/32"],
      src_ip_required: true,
      dst_ip_required: true,
      src_routes: [{ prefix: "169.254.0.2/32", nextHop: "169.254.0.2" }],
      dst_routes: [{ prefix: "169.254.0.1/32", nextHop: "169.254.0.1" }],
      excluded_prefixes: ["198.51.100.0/24"],
      ip_neighbors: [{ ip: "169.254.0.2", hardware_address: "02:00:00:00:00:02" }],
      extra_prefix_request: [{ addr_family: { family: "IPV6" }, prefix_len: 64, required_number: 1, requested_number: 2 }],
      extra_prefixes: ["fd00::/64"],
      policies: [
        {
          from: "169.254.0.1/32",
          proto: "6",
          dst_port: "80",
          src_port: "1000-2000",
          routes: [{ prefix: "203.0.113.0/24", nextHop: "169.254.0.2" }],
        },
      ],
    },
    dns_context: { configs: [{ dns_server_ips: ["198.51.100.53"], search_domains: ["svc.example"] }] },
    ethernet_context: { src_mac: "02:00:00:00:00:01", dst_mac: "02:00:00:00:00:02", vlan_tag: 100 },
    extra_context: { k: "v" },
    MTU: 1446,
  },
  labels: { nodeName: "node-1", podName: "pod-1" },
  path: {
    index: 1,
    path_segments: [
      { name: "nsc", id: "conn-0", token: "tok-0", expires: tsPlain(expires), metrics: { client_interface: "KERNEL/nsm-1" } },
      { name: "nsmgr", id: "conn-1", token: "tok-1", expires: tsPlain(expires), metrics: { server_interface: "KERNEL/nsm-2" } },
    ],
  },
  network_service_endpoint_name: "nse-1",
  payload: "IP",
  state: "REFRESH_REQUESTED",
};

/** Every field of a NetworkServiceEndpoint set. */
export const fullEndpoint = create(NetworkServiceEndpointSchema, {
  name: "nse-1",
  networkServiceNames: ["my-service", "forwarder"],
  networkServiceLabels: { "my-service": { labels: { app: "icmp" } }, forwarder: { labels: { p2p: "true" } } },
  url: "tcp://127.0.0.1:5003",
  expirationTime: timestampFromDate(expires),
  initialRegistrationTime: timestampFromDate(registered),
  pathIds: ["spiffe://test.nsm-ts/ns/a/pod/b"],
});

/** `fullEndpoint` as proto-loader decodes it. */
export const fullEndpointPlain: Plain = {
  name: "nse-1",
  network_service_names: ["my-service", "forwarder"],
  network_service_labels: { "my-service": { labels: { app: "icmp" } }, forwarder: { labels: { p2p: "true" } } },
  url: "tcp://127.0.0.1:5003",
  expiration_time: tsPlain(expires),
  initial_registration_time: tsPlain(registered),
  path_ids: ["spiffe://test.nsm-ts/ns/a/pod/b"],
};

/** Every field of a ConnectionEvent set. */
export const fullEvent = create(ConnectionEventSchema, { type: ConnectionEventType.UPDATE, connections: { "conn-1": fullConnection } });
/** `fullEvent` as proto-loader decodes it. */
export const fullEventPlain: Plain = { type: "UPDATE", connections: { "conn-1": fullConnectionPlain } };

/** A NetworkServiceRequest with every field set. */
export const fullRequest = create(NetworkServiceRequestSchema, {
  connection: fullConnection,
  mechanismPreferences: [
    { cls: "LOCAL", type: "KERNEL", parameters: { name: "nsm-1" } },
    { cls: "REMOTE", type: "VXLAN", parameters: { src_ip: "198.51.100.1" } },
  ],
});
/** `fullRequest` as proto-loader decodes it. */
export const fullRequestPlain: Plain = {
  connection: fullConnectionPlain,
  mechanism_preferences: [
    { cls: "LOCAL", type: "KERNEL", parameters: { name: "nsm-1" } },
    { cls: "REMOTE", type: "VXLAN", parameters: { src_ip: "198.51.100.1" } },
  ],
};

/** A monitor selector with every field set. */
export const fullSelector = create(MonitorScopeSelectorSchema, {
  pathSegments: [{ name: "nsc", id: "conn-0", token: "tok-0", expires: timestampFromDate(expires), metrics: { a: "b" } }],
  networkServices: ["my-service"],
});
/** `fullSelector` as proto-loader decodes it. */
export const fullSelectorPlain: Plain = {
  path_segments: [{ name: "nsc", id: "conn-0", token: "tok-0", expires: tsPlain(expires), metrics: { a: "b" } }],
  network_services: ["my-service"],
};

/** A registry NetworkService with every field set. */
export const fullService = create(NetworkServiceSchema, {
  name: "my-service",
  payload: "ETHERNET",
  matches: [
    {
      sourceSelector: { app: "client" },
      routes: [{ destinationSelector: { nodeName: "{{.nodeName}}" }, weight: 7 }],
      fallthrough: true,
      metadata: { labels: { p2mp: "true" } },
    },
  ],
  pathIds: ["spiffe://test.nsm-ts/ns/a/pod/b"],
});
/** `fullService` as proto-loader decodes it. */
export const fullServicePlain: Plain = {
  name: "my-service",
  payload: "ETHERNET",
  matches: [
    {
      source_selector: { app: "client" },
      routes: [{ destination_selector: { nodeName: "{{.nodeName}}" }, weight: 7 }],
      fallthrough: true,
      metadata: { labels: { p2mp: "true" } },
    },
  ],
  path_ids: ["spiffe://test.nsm-ts/ns/a/pod/b"],
};

/** A watching NS query with every field set. */
export const nsQuery = create(NetworkServiceQuerySchema, { networkService: fullService, watch: true });
/** `nsQuery` as proto-loader decodes it. */
export const nsQueryPlain: Plain = { network_service: fullServicePlain, watch: true };
/** An NS Find response with every field set. */
export const nsResponse = create(NetworkServiceResponseSchema, { networkService: fullService, deleted: true });
/** `nsResponse` as proto-loader decodes it. */
export const nsResponsePlain: Plain = { network_service: fullServicePlain, deleted: true };
/** A watching NSE query with every field set. */
export const nseQuery = create(NetworkServiceEndpointQuerySchema, { networkServiceEndpoint: fullEndpoint, watch: true });
/** `nseQuery` as proto-loader decodes it. */
export const nseQueryPlain: Plain = { network_service_endpoint: fullEndpointPlain, watch: true };
/** An NSE Find response with every field set. */
export const nseResponse = create(NetworkServiceEndpointResponseSchema, { networkServiceEndpoint: fullEndpoint, deleted: true });
/** `nseResponse` as proto-loader decodes it. */
export const nseResponsePlain: Plain = { network_service_endpoint: fullEndpointPlain, deleted: true };

/** IPAM requests (ALLOCATE and DELETE) with every field set. */
export const prefixRequests = [
  create(PrefixRequestSchema, { type: PrefixType.ALLOCATE, prefix: "169.254.0.0/24", excludePrefixes: ["169.254.0.0/28"] }),
  create(PrefixRequestSchema, { type: PrefixType.DELETE, prefix: "169.254.1.0/24", excludePrefixes: ["169.254.1.0/28"] }),
];
/** `prefixRequests` as proto-loader decodes them. */
export const prefixRequestsPlain: Plain[] = [
  { type: "ALLOCATE", prefix: "169.254.0.0/24", exclude_prefixes: ["169.254.0.0/28"] },
  { type: "DELETE", prefix: "169.254.1.0/24", exclude_prefixes: ["169.254.1.0/28"] },
];
/** The IPAM test servers' answer to a request: echo its prefix, add one exclusion. */
export function prefixResponseFor(prefix: string, excluded: string[]): MessageShape<typeof PrefixResponseSchema> {
  return create(PrefixResponseSchema, { prefix, excludePrefixes: [...excluded, "198.51.100.0/24"] });
}

/**
 * Lists the fields of `msg` (recursively) that hold their zero value, so a test can prove a fixture is
 * "fully populated" and every field really crossed the wire.
 */
export function unsetFields(schema: DescMessage, msg: MessageShape<DescMessage>, prefix = schema.typeName): string[] {
  const out: string[] = [];
  const r = reflect(schema, msg);
  for (const f of r.fields) {
    const at = `${prefix}.${f.name}`;
    if (!r.isSet(f)) {
      out.push(at);
      continue;
    }
    if (f.fieldKind === "message") out.push(...unsetFields(f.message, r.get(f).message, at));
    if (f.fieldKind === "list" && f.listKind === "message") {
      for (const item of r.get(f)) if (isReflectMessage(item)) out.push(...unsetFields(f.message, item.message, `${at}[]`));
    }
    if (f.fieldKind === "map" && f.mapKind === "message") {
      for (const [, v] of r.get(f)) if (isReflectMessage(v)) out.push(...unsetFields(f.message, v.message, `${at}{}`));
    }
  }
  return out;
}
