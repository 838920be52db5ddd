/**
 * Well-known strings of the NSM wire protocol. Values are upstream's; names are ours. They travel inside messages
 * and metadata, so changing one breaks interop with upstream peers (docs/wire-compatibility.md#never-change).
 */

/** Mechanism classes (`Mechanism.cls`). */
export const MechanismClass = {
  LOCAL: "LOCAL",
  REMOTE: "REMOTE",
} as const;
export type MechanismClass = (typeof MechanismClass)[keyof typeof MechanismClass];

/** Mechanism types (`Mechanism.type`). */
export const MechanismType = {
  KERNEL: "KERNEL",
  MEMIF: "MEMIF",
  VFIO: "VFIO",
  NOOP: "NOOP",
  VXLAN: "VXLAN",
  WIREGUARD: "WIREGUARD",
  IPSEC: "IPSEC",
  VLAN: "VLAN",
  SRV6: "SRV6",
} as const;
export type MechanismType = (typeof MechanismType)[keyof typeof MechanismType];

/** The class each mechanism type belongs to; NOOP has none upstream and is treated as local. */
export const mechanismClassOf: Readonly<Record<MechanismType, MechanismClass | "">> = {
  KERNEL: "LOCAL",
  MEMIF: "LOCAL",
  VFIO: "LOCAL",
  NOOP: "",
  VXLAN: "REMOTE",
  WIREGUARD: "REMOTE",
  IPSEC: "REMOTE",
  VLAN: "REMOTE",
  SRV6: "REMOTE",
};

/** Parameter keys shared by many mechanisms (upstream `mechanisms/common`). */
export const CommonParam = {
  SRC_IP: "src_ip",
  DST_IP: "dst_ip",
  SRC_PORT: "src_port",
  DST_PORT: "dst_port",
  SRC_ORIGINAL_IP: "orig_src_ip",
  DST_ORIGINAL_IP: "orig_dst_ip",
  NETNS_INODE: "netnsInode",
  INTERFACE_NAME: "name",
  INODE_URL: "inodeURL",
  PCI_ADDRESS: "pciAddress",
  DEVICE_TOKEN_ID: "tokenID",
  MTU: "MTU",
} as const;

/** KERNEL mechanism parameter keys and limits. */
export const KernelParam = {
  NETNS_URL: "inodeURL",
  NETNS_URL_SCHEME: "file",
  INTERFACE_NAME: "name",
  PCI_ADDRESS: "pciAddress",
  DEVICE_TOKEN_ID: "tokenID",
  NETNS_INODE: "netnsInode",
  SUPPORTS_VLAN: "supportsVlan",
  VLAN: "vlan",
  ROUTE_LOCAL_NET: "routeLocalNet",
  IPTABLES4_NAT_TEMPLATE: "IPTables4NatTemplate",
} as const;

/** Longest Linux interface name (IFNAMSIZ - 1). */
export const LINUX_IF_MAX_LENGTH = 15;

/** The netns URL a process uses for "my own network namespace". */
export const OWN_NETNS_URL = "file:///proc/thread-self/ns/net";

/** VXLAN mechanism parameter keys. */
export const VxlanParam = {
  SRC_IP: "src_ip",
  DST_IP: "dst_ip",
  SRC_PORT: "src_port",
  DST_PORT: "dst_port",
  VNI: "vni",
  MTU: "MTU",
} as const;

/** MEMIF mechanism parameter keys. */
export const MemifParam = { SOCKET_FILE: "socketfile", INODE_URL: "inodeURL" } as const;

/** WIREGUARD / IPSEC mechanism parameter keys. */
export const TunnelKeyParam = {
  SRC_PUBLIC_KEY: "src_public_key",
  DST_PUBLIC_KEY: "dst_public_key",
} as const;

/** VLAN mechanism parameter key. */
export const VlanParam = { VLAN_ID: "vlan-id" } as const;

/** Payload kinds (`Connection.payload`, `NetworkService.payload`). */
export const Payload = { ETHERNET: "ETHERNET", IP: "IP" } as const;
export type Payload = (typeof Payload)[keyof typeof Payload];

/** Well-known label keys and values. */
export const Label = {
  NODE_NAME: "nodeName",
  POD_NAME: "podName",
  CLUSTER_NAME: "clusterName",
  SRIOV_TOKEN: "sriovToken",
  SERVICE_DOMAIN: "serviceDomain",
  P2P: "p2p",
  P2MP: "p2mp",
} as const;

/** Network service name forwarders register under. */
export const FORWARDER_NETWORK_SERVICE = "forwarder";

/** Path-segment metrics keys. */
export const MetricsKey = { CLIENT_INTERFACE: "client_interface", SERVER_INTERFACE: "server_interface" } as const;

/** gRPC metadata keys of the side channel (docs/wire-compatibility.md#metadata). */
export const MetadataKey = {
  /** The caller's JWT, on every RPC. */
  CLIENT_TOKEN: "nsm-client-token",
  /** Expiry of that JWT, RFC 3339 with nanoseconds. */
  CLIENT_TOKEN_EXPIRES: "nsm-client-token-expires",
  /** Registry path JSON (`{"Index":n,"PathSegments":[{"token":…}]}`), request metadata and response header. */
  PATH: "path",
  /** Trace toggle: "0" undefined, "1" on, "2" off. */
  GRPC_TRACING: "grpctracing",
} as const;

/** URL schemes used in NSM messages and configuration. */
export const UrlScheme = {
  UNIX: "unix",
  TCP: "tcp",
  INODE: "inode",
  FILE: "file",
} as const;

/** Default nsmgr socket on a node. */
export const DEFAULT_NSMGR_SOCKET_URL = "unix:///var/lib/networkservicemesh/nsm.io.sock";

/** Separator of interdomain names (`name@domain`). */
export const INTERDOMAIN_SEPARATOR = "@";

/** Fully qualified gRPC service names that NSM servers mark SERVING in `grpc.health.v1`. */
export const ServiceName = {
  NETWORK_SERVICE: "networkservice.NetworkService",
  MONITOR_CONNECTION: "connection.MonitorConnection",
  NS_REGISTRY: "registry.NetworkServiceRegistry",
  NSE_REGISTRY: "registry.NetworkServiceEndpointRegistry",
  IPAM: "ipam.IPAM",
} as const;
