/** What callers pass to `createSandbox`, `addEndpoint` and `addClient`. */
import type { MockClock } from "@nsm-ts/base/clock";
import type { ClientInterceptor, ServerInterceptor } from "@nsm-ts/base/grpc";
import type { Logger } from "@nsm-ts/base/log";
import type { ClientOptions, NetworkServiceElement } from "@nsm-ts/sdk/networkservice";

/** Options of `createSandbox`. */
export interface SandboxOptions {
  /** Number of nodes (nsmgr + forwarder each); default 1. */
  nodes?: number;
  /** Loopback TCP (`tcp://127.0.0.1:<port>`) or unix sockets in a temp dir; default "tcp". */
  transport?: "tcp" | "unix";
  /** Clock of every chain, token and store; a MockClock makes refresh, timeout and expiry instant. Default real. */
  clock?: "real" | MockClock;
  /** Lifetime of every token the parts generate; default 10 minutes (`NSM_MAX_TOKEN_LIFETIME`). */
  tokenLifetimeMs?: number;
  /** Registration lifetime without a refresh, at the registry and the nsmgrs; default 60 000 ms. */
  registryExpirePeriodMs?: number;
  /** Logger of every part; default silent. */
  log?: Logger;
  /**
   * Interceptors per part (tracing, metrics), by part name (`registry`, `nsmgr-0`, `forwarder-0`, endpoint and
   * client names): servers get `server`, the part's dialers and channel pools `client`. Default none.
   */
  interceptors?: (part: string) => SandboxInterceptors;
  /**
   * Makes the sandbox one domain of an interdomain test (TCP transport only): its registry forwards `name@domain`
   * names to an nsmgr-proxy, which forwards them to a registry proxy resolving domains through `dns`; the
   * registry and the nsmgr-proxy are published in `dns` under `registry.nsm-system.<name>` and
   * `nsmgr-proxy.nsm-system.<name>`. Default none (a single-domain sandbox).
   */
  domain?: SandboxDomainOptions;
}

/** Options of an interdomain sandbox. */
export interface SandboxDomainOptions {
  /** The domain (`cluster-b.example`). */
  name: string;
  /** The DNS every domain of the test publishes in and resolves through (`createDomainsDns()`). */
  dns: { readonly at: string; set(name: string, url: string): void };
  /** A floating registry: only the registry, published in `dns`, no nsmgr-proxy nor registry proxy. Default false. */
  floating?: boolean;
  /** Internal ↔ external address map of the nsmgr-proxy (swapip); default none. */
  ipMap?: () => Readonly<Record<string, string>>;
}

/** Interceptors of one sandbox part. */
export interface SandboxInterceptors {
  server?: ServerInterceptor[];
  client?: ClientInterceptor[];
}

/** Options of `addEndpoint`. */
export interface SandboxEndpointOptions {
  /** Endpoint name (registration and path segment). */
  name: string;
  /** Network services it serves (each is registered as a network service too). */
  services: string[];
  /** Labels of its services (the same for each). */
  labels?: Readonly<Record<string, string>>;
  /** Elements after the standard endpoint chain (counters, passthrough clients, failure injection). */
  additional?: NetworkServiceElement[];
  /** Register without serving; call `start()` later (an endpoint registered before it listens). Default true. */
  start?: boolean;
  /** Payload of the network services it registers; default "ETHERNET". */
  payload?: string;
}

/** Options of `addClient`: the standard client options minus those the sandbox provides. */
export type SandboxClientOptions = Partial<Omit<ClientOptions, "connectTo" | "tokenGenerator">> & {
  /** Lifetime of this client's tokens; default the sandbox's. */
  tokenLifetimeMs?: number;
};
