/** What a running sandbox and its parts look like to a test. */
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import type { Clock } from "@nsm-ts/base/clock";
import type { TokenGenerator } from "@nsm-ts/base/token";
import type { Endpoint, Forwarder, NetworkServiceElement, NsmClient, Nsmgr, NsmgrProxy } from "@nsm-ts/sdk/networkservice";
import type { NseHandler, NsHandler } from "@nsm-ts/sdk/registry";
import type { SandboxClientOptions, SandboxEndpointOptions } from "./options.js";

/** A part of the sandbox that can be killed (abruptly: no unregistering, no closing) and restarted. */
export interface SandboxPart {
  /** Where the part listens (the same URL after a restart). */
  readonly url: string;
  /** True while it serves. */
  readonly alive: boolean;
  /** Stops serving at once: open streams break, background work ends, nothing is unregistered. */
  kill(): Promise<void>;
  /** Kills the part if it is alive and starts a fresh instance (no state kept) on the same URL. */
  restart(): Promise<void>;
}

/** The registry part. */
export interface SandboxRegistry extends SandboxPart {
  /** Endpoint registry handler talking to this registry over gRPC (for assertions such as Find). */
  readonly nse: NseHandler;
  /** Network service registry handler talking to this registry over gRPC (registers as `sandbox`). */
  readonly ns: NsHandler;
}

/** The interdomain parts of a sandbox made with `domain` (absent for a floating registry). */
export interface SandboxDomainParts {
  /** The domain's nsmgr-proxy (its name is `nsmgr-proxy.<domain>`). */
  readonly nsmgrProxy: SandboxPart & { readonly name: string; readonly instance: NsmgrProxy };
  /** The registry proxy resolving other domains through DNS. */
  readonly registryProxy: SandboxPart;
}

/** One node: an nsmgr and a forwarder. */
export interface SandboxNode {
  readonly index: number;
  /** The node name (`node-<index>`), also the `nodeName` label of its connections and endpoints. */
  readonly name: string;
  readonly nsmgr: SandboxPart & { readonly name: string; readonly instance: Nsmgr };
  readonly forwarder: SandboxForwarder;
}

/** A forwarder of the sandbox. */
export interface SandboxForwarder extends SandboxPart {
  readonly name: string;
  /** The running chain (the latest instance after a restart). */
  readonly instance: Forwarder;
}

/** An endpoint of the sandbox. */
export interface SandboxEndpoint extends SandboxPart {
  readonly name: string;
  /** Its registration as returned by the nsmgr. */
  readonly registration: NetworkServiceEndpoint;
  /** The running chain (undefined before `start()`). */
  readonly instance: Endpoint | undefined;
  /** Starts serving (when created with `start: false`). */
  start(): Promise<void>;
  /** Removes its registration (through its nsmgr) and stops refreshing it. */
  unregister(): Promise<void>;
}

/** A running sandbox. */
export interface Sandbox {
  readonly registry: SandboxRegistry;
  /** The domain name (`SandboxOptions.domain.name`), or undefined. */
  readonly domain: string | undefined;
  /** The nsmgr-proxy and registry proxy of an interdomain (non-floating) sandbox. */
  readonly edge: SandboxDomainParts | undefined;
  readonly nodes: readonly SandboxNode[];
  /** The clock every part uses. */
  readonly clock: Clock;
  /** Adds an endpoint on node `node` (index or node), registered through that node's nsmgr. */
  addEndpoint(node: number | SandboxNode, opts: SandboxEndpointOptions): Promise<SandboxEndpoint>;
  /** Adds another forwarder named `name` to node `node` (registered through its nsmgr). */
  addForwarder(node: number | SandboxNode, name: string): Promise<SandboxForwarder>;
  /** A standard client of node `node`'s nsmgr (NOOP mechanism, dev-mode token); disposed by `close()`. */
  addClient(node: number | SandboxNode, opts?: SandboxClientOptions): NsmClient;
  /**
   * Elements making an endpoint a passthrough: they request `service` from node `node`'s nsmgr as a client
   * named `<name>-client` and hand the connection back as the endpoint's own.
   */
  passthrough(node: number | SandboxNode, name: string, service: string): NetworkServiceElement[];
  /** A token generator for `name` (dev identity, the sandbox's lifetime and clock). */
  tokenGenerator(name: string): TokenGenerator;
  /** Stops everything and removes the temp dir. */
  close(): Promise<void>;
}
