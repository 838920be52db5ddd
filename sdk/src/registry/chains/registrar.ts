/**
 * The registry as an endpoint author wants it: register an endpoint and its network services through the node's
 * nsmgr (or straight to a registry), keep them registered (refresh before they expire, heal after the nsmgr or
 * registry restarts), look entries up, and unregister — without building call contexts or client chains by hand.
 * Every call gets a fresh context with the per-call timeout; the registrations live until `unregister…` or `close`.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  type NetworkService,
  type NetworkServiceEndpoint,
  NetworkServiceEndpointSchema,
  NetworkServiceLabelsSchema,
  NetworkServiceSchema,
} from "@nsm-ts/api/registry";
import type { Clock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { type Channel, dial } from "@nsm-ts/base/grpc";
import type { Logger } from "@nsm-ts/base/log";
import { Code, isStatusError } from "@nsm-ts/base/status";
import type { TokenGenerator } from "@nsm-ts/base/token";
import type * as retry from "../common/retry/index.js";
import type { FindResult, RegistryHandler } from "../core/index.js";
import { createRegistryClient } from "./client.js";

/** Options of `createRegistrar`. */
export interface RegistrarOptions {
  /** Signs our registry path segments and per-RPC tokens. */
  tokenGenerator: TokenGenerator;
  /** Deadline of each Register, Unregister and (non-watching) Find; default 15 000 ms. */
  callTimeoutMs?: number;
  /** retry of each call while the nsmgr or registry is unreachable; default 1 s interval within the deadline. */
  retry?: retry.RetryOptions;
  /** Logger of the calls; default silent. */
  log?: Logger;
  /** Time source (a MockClock in tests); default the real clock. */
  clock?: Clock;
}

/** Register, look up and unregister network services and endpoints; see the module comment. */
export interface Registrar {
  /** Registers a network service (e.g. `{ name: "my-svc", payload: "ETHERNET" }`) and keeps it registered. */
  registerService(ns: MessageInitShape<typeof NetworkServiceSchema>): Promise<NetworkService>;
  /** Registers an endpoint (name, URL, services) and keeps it registered; returns the entry as stored. */
  registerEndpoint(nse: MessageInitShape<typeof NetworkServiceEndpointSchema>): Promise<NetworkServiceEndpoint>;
  /** Unregisters a network service registered here (by name). */
  unregisterService(name: string): Promise<void>;
  /** Unregisters an endpoint registered here (by name); call it before stopping the endpoint. */
  unregisterEndpoint(name: string): Promise<void>;
  /** The endpoints matching `template` (upstream's Find semantics: empty fields match anything). */
  findEndpoints(template?: MessageInitShape<typeof NetworkServiceEndpointSchema>): Promise<NetworkServiceEndpoint[]>;
  /** The network services matching `template`. */
  findServices(template?: MessageInitShape<typeof NetworkServiceSchema>): Promise<NetworkService[]>;
  /** Stops keeping the registrations alive (they expire in the registry unless unregistered first) and hangs up. */
  close(): Promise<void>;
}

/**
 * A registrar talking to `target`: a URL (`unix:///var/lib/networkservicemesh/nsm.io.sock`, `tcp://host:port`),
 * dialed here and closed by `close`, or a channel the caller owns.
 */
export function createRegistrar(target: string | Channel, opts: RegistrarOptions): Registrar {
  const owned = typeof target === "string";
  const channel = typeof target === "string" ? dial(target) : target;
  const lifetime = new AbortController();
  const common = { tokenGenerator: opts.tokenGenerator, signal: lifetime.signal, heal: true, ...(opts.retry ? { retry: opts.retry } : {}) };
  const nses = createRegistryClient("nse", channel, common);
  const services = createRegistryClient("ns", channel, common);
  const registered = { nse: new Map<string, NetworkServiceEndpoint>(), ns: new Map<string, NetworkService>() };
  const timeoutMs = opts.callTimeoutMs ?? 15_000;
  const ctx = (): CallContext => {
    const base = CallContext.create({ ...(opts.log ? { log: opts.log } : {}), ...(opts.clock ? { clock: opts.clock } : {}) });
    return base.withDeadline(base.clock.now() + timeoutMs);
  };
  const findAll = async <T extends NetworkService | NetworkServiceEndpoint>(h: RegistryHandler<T>, template: T): Promise<T[]> => {
    const out: T[] = [];
    for await (const r of h.find(ctx(), { template, watch: false }) as AsyncIterable<FindResult<T>>) out.push(r.entry);
    return out;
  };
  return {
    async registerService(init) {
      const ns = await services.register(ctx(), create(NetworkServiceSchema, init));
      registered.ns.set(ns.name, ns);
      return ns;
    },
    async registerEndpoint(init) {
      const nse = await nses.register(ctx(), create(NetworkServiceEndpointSchema, init));
      registered.nse.set(nse.name, nse);
      return nse;
    },
    async unregisterService(name) {
      await services.unregister(ctx(), registered.ns.get(name) ?? create(NetworkServiceSchema, { name }));
      registered.ns.delete(name);
    },
    async unregisterEndpoint(name) {
      await nses.unregister(ctx(), registered.nse.get(name) ?? create(NetworkServiceEndpointSchema, { name }));
      registered.nse.delete(name);
    },
    findEndpoints: (template = {}) => findAll(nses, create(NetworkServiceEndpointSchema, template)),
    findServices: (template = {}) => findAll(services, create(NetworkServiceSchema, template)),
    async close() {
      lifetime.abort();
      if (owned) channel.close();
    },
  };
}

/**
 * Registers each network service of `names` (with `payload`) through `client`, for an endpoint that serves them.
 * A service owned by someone else (PermissionDenied: another endpoint of the service registered it first) is no
 * error — it exists, which is all the endpoint needs; anything else is thrown.
 */
export async function ensureNetworkServices(
  client: RegistryHandler<NetworkService>,
  ctx: () => CallContext,
  names: readonly string[],
  payload: string,
  log: Logger,
): Promise<void> {
  for (const name of names) {
    try {
      await client.register(ctx(), create(NetworkServiceSchema, { name, payload }));
    } catch (err) {
      if (!isStatusError(err, Code.PermissionDenied)) throw err;
      log.info({ networkService: name, reason: err.message }, "network service already registered by another endpoint");
    }
  }
}

/** The registration of endpoint `name` at `url` serving `services`, each with the same `labels`. */
export function endpointEntry(
  name: string,
  url: string,
  services: readonly string[],
  labels: Readonly<Record<string, string>>,
): NetworkServiceEndpoint {
  return create(NetworkServiceEndpointSchema, {
    name,
    url,
    networkServiceNames: [...services],
    networkServiceLabels: Object.fromEntries(services.map((s) => [s, create(NetworkServiceLabelsSchema, { labels: { ...labels } })])),
  });
}
