/**
 * @nsm-ts/api: upstream-compatible NSM protobuf types. Import the proto package you need
 * (`@nsm-ts/api/networkservice`, `@nsm-ts/api/registry`, `@nsm-ts/api/ipam`) and the constants.
 */
export {
  CommonParam,
  DEFAULT_NSMGR_SOCKET_URL,
  FORWARDER_NETWORK_SERVICE,
  INTERDOMAIN_SEPARATOR,
  KernelParam,
  Label,
  LINUX_IF_MAX_LENGTH,
  MechanismClass,
  MechanismType,
  MemifParam,
  MetadataKey,
  MetricsKey,
  mechanismClassOf,
  OWN_NETNS_URL,
  Payload,
  ServiceName,
  TunnelKeyParam,
  UrlScheme,
  VlanParam,
  VxlanParam,
} from "./constants.js";
