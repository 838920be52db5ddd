/**
 * The registry proxy of a domain (upstream's registry-proxy-dns; cmd-registry in `NSM_REGISTRY_MODE=proxy-dns`):
 * it serves only interdomain names and sends each to the registry of the name's domain, found with DNS.
 * validate → updatepath → begin → dnsresolve → connect (a channel per remote registry, kept until `close()`).
 * Network services and endpoints alike. The remote registry authorizes; this proxy must be one of its registrars
 * (`NSM_REGISTRARS` there) for registrations to pass.
 */
import type { NetworkService, NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import type { DialOptions } from "@nsm-ts/base/grpc";
import type { TokenGenerator } from "@nsm-ts/base/token";
import * as begin from "../common/begin/index.js";
import * as connect from "../common/connect/index.js";
import * as dnsresolve from "../common/dnsresolve/index.js";
import * as updatepath from "../common/updatepath/index.js";
import * as validate from "../common/validate/index.js";
import { type NseHandler, type NsHandler, registryChain, registryHandler } from "../core/index.js";

/** Options of `createRegistryProxyDns`. */
export interface RegistryProxyDnsOptions extends dnsresolve.DnsResolveOptions {
  /** Signs the proxy's path segments and per-RPC tokens. */
  tokenGenerator: TokenGenerator;
  /** Answers the SRV and A/AAAA questions (`dnsresolve.createDnsResolver(servers)`). */
  resolver: dnsresolve.DomainResolver;
  /** How remote registries are dialed (TLS, interceptors); default insecure. */
  dialOptions?: DialOptions;
}

/** The handlers of a registry proxy and how to end it. */
export interface RegistryProxyDns {
  ns: NsHandler;
  nse: NseHandler;
  /** Closes the channels to remote registries. */
  close(): void;
}

/** Builds a registry proxy (see the header comment). */
export function createRegistryProxyDns(opts: RegistryProxyDnsOptions): RegistryProxyDns {
  const pool = connect.createChannelPool(opts.dialOptions ?? {});
  const gen = opts.tokenGenerator;
  const resolveOpts: dnsresolve.DnsResolveOptions = {
    ...(opts.registryService === undefined ? {} : { registryService: opts.registryService }),
    ...(opts.nsmgrProxyService === undefined ? {} : { nsmgrProxyService: opts.nsmgrProxyService }),
  };
  const nse = registryHandler(
    registryChain<NetworkServiceEndpoint>(
      validate.newServer(),
      updatepath.newServer(gen),
      begin.newServer(),
      dnsresolve.newServer<NetworkServiceEndpoint>(opts.resolver, resolveOpts),
      connect.newClient("nse", connect.fromContext(pool), { tokenGenerator: gen }),
    ),
  );
  const ns = registryHandler(
    registryChain<NetworkService>(
      validate.newServer(),
      updatepath.newServer(gen),
      begin.newServer(),
      dnsresolve.newServer<NetworkService>(opts.resolver, resolveOpts),
      connect.newClient("ns", connect.fromContext(pool), { tokenGenerator: gen }),
    ),
  );
  return { ns, nse, close: () => pool.close() };
}
