/**
 * @nsm-ts/sdk/networkservice: the chain core and every networkservice element, one namespace per element
 * (`updatepath.newServer(name)`, `begin.newClient()`, …), as upstream's folders are named.
 */

// Start here: the standard client and endpoint chains, and the nsmgr and forwarder chains of the programs.

export {
  type ClientCallOptions,
  type ClientHealOptions,
  type ClientOptions,
  client,
  createForwarder,
  createNsmgr,
  createNsmgrProxy,
  type Endpoint,
  type EndpointOptions,
  endpoint,
  type Forwarder,
  type ForwarderOptions,
  type HopOptions,
  type NsmClient,
  type Nsmgr,
  type NsmgrOptions,
  type NsmgrProxy,
  type NsmgrProxyOptions,
  newServerView,
} from "./chains/index.js";

// Writing elements: the element contract, composition and serving a chain over gRPC.

export {
  chain,
  connectionOf,
  handler,
  type MonitorConnectionServer,
  type NetworkServiceClient,
  type NetworkServiceElement,
  type NetworkServiceHandler,
  type NetworkServiceServer,
  passThrough,
  type ServeOptions,
  serveNetworkService,
  tail,
} from "./core/index.js";

// The elements, one namespace each, named as upstream's folders.

export * as authorize from "./common/authorize/index.js";
export * as begin from "./common/begin/index.js";
export * as clientinfo from "./common/clientinfo/index.js";
export * as clienturl from "./common/clienturl/index.js";
export * as connect from "./common/connect/index.js";
export * as discover from "./common/discover/index.js";
export * as discoverforwarder from "./common/discoverforwarder/index.js";
export * as excludedprefixes from "./common/excludedprefixes/index.js";
export * as filtermechanisms from "./common/filtermechanisms/index.js";
export * as heal from "./common/heal/index.js";
export * as interdomainbypass from "./common/interdomainbypass/index.js";
export * as mechanisms from "./common/mechanisms/index.js";
export * as mechanismtranslation from "./common/mechanismtranslation/index.js";
export * as metadata from "./common/metadata/index.js";
export * as monitor from "./common/monitor/index.js";
export * as refresh from "./common/refresh/index.js";
export * as retry from "./common/retry/index.js";
export * as roundrobin from "./common/roundrobin/index.js";
export * as timeout from "./common/timeout/index.js";
export * as trimpath from "./common/trimpath/index.js";
export * as updatepath from "./common/updatepath/index.js";
export * as updatetoken from "./common/updatetoken/index.js";
export * as validate from "./common/validate/index.js";
export * as vl3mtu from "./common/vl3mtu/index.js";
export * as dnscontext from "./connectioncontext/dnscontext/index.js";
export * as ipam from "./ipam/index.js";
