/**
 * cmd-registry's services: the `nsmts.services.v1` API on the registry's server, ServiceIPs and instance IPs
 * allocated by the resource managers from the configured ranges, this registry's endpoints as the "registry"
 * source (in-process, from the store), and optionally a lower-priority "remote" source: another registry by URL,
 * or every endpoint of another domain found through this registry's own chain (`name@domain` names leave for the
 * nsmgr-proxy, so the other cluster's registry need not be reachable from here).
 */
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { CallContext } from "@nsm-ts/base/context";
import type { Channel, NsmServer } from "@nsm-ts/base/grpc";
import type { Logger } from "@nsm-ts/base/log";
import type { ResourceManagers } from "@nsm-ts/resources";
import { dnsresolve, domainFind, type NseHandler, type RegistryStore } from "@nsm-ts/sdk/registry";
import {
  createResourceAllocator,
  type RegistrySource,
  type RegistrySourceOptions,
  registerServices,
  remoteFind,
  ServiceModel,
  startRegistrySource,
  storeFind,
} from "@nsm-ts/services";
import type { Config } from "./config.js";

/** What `startServices` needs besides the configuration. */
export interface ServicesDeps {
  readonly managers: ResourceManagers;
  readonly nseStore: RegistryStore<NetworkServiceEndpoint>;
  readonly log: Logger;
  readonly dial: (url: string) => Channel;
  /** This registry's NSE chain, which sends `name@domain` to the proxy registry (for NSM_SERVICES_REMOTE_DOMAIN). */
  readonly registry?: NseHandler;
}

/** Serves the services API on `server` and starts the sources; `stop()` ends the sources and the remote channel. */
export async function startServices(
  server: NsmServer,
  cfg: Pick<
    Config,
    | "servicesRoundRobinRange"
    | "servicesClosestRange"
    | "servicesConsistentHashRange"
    | "servicesInstanceRange"
    | "servicesRemoteRegistryUrl"
    | "servicesRemoteDomain"
    | "servicesRemoteRetry"
  >,
  deps: ServicesDeps,
): Promise<{ model: ServiceModel; stop(): Promise<void> }> {
  const allocator = createResourceAllocator(deps.managers, {
    policies: {
      "round-robin": cfg.servicesRoundRobinRange,
      closest: cfg.servicesClosestRange,
      "consistent-hash": cfg.servicesConsistentHashRange,
    },
    instance: cfg.servicesInstanceRange,
  });
  await allocator.init();
  const log = deps.log.child({ component: "services" });
  const model = new ServiceModel({ allocator, log });
  registerServices(server, model);
  const sources: RegistrySource[] = [startRegistrySource({ model, source: "registry", find: storeFind(deps.nseStore), log })];
  let channel: Channel | undefined;
  let find: RegistrySourceOptions["find"] | undefined;
  if (cfg.servicesRemoteRegistryUrl !== undefined) {
    channel = deps.dial(cfg.servicesRemoteRegistryUrl);
    find = remoteFind(channel);
  } else if (cfg.servicesRemoteDomain !== undefined) {
    if (deps.registry === undefined) throw new Error("services: NSM_SERVICES_REMOTE_DOMAIN needs the registry chain");
    const domainEvents = domainFind(deps.registry, cfg.servicesRemoteDomain, (signal) => CallContext.create({ signal, log }));
    find = async function* (signal, watch) {
      for await (const ev of domainEvents(signal, watch)) yield { entry: asLocalBackend(ev.entry), deleted: ev.deleted };
    };
  }
  if (find !== undefined) {
    sources.push(startRegistrySource({ model, source: "remote", find, log, retryMs: cfg.servicesRemoteRetry, dropOnFailure: true }));
  }
  log.info(
    {
      ranges: {
        roundRobin: cfg.servicesRoundRobinRange ?? null,
        closest: cfg.servicesClosestRange ?? null,
        consistentHash: cfg.servicesConsistentHashRange ?? null,
        instance: cfg.servicesInstanceRange ?? null,
      },
      remote: cfg.servicesRemoteRegistryUrl ?? (cfg.servicesRemoteDomain === undefined ? null : `@${cfg.servicesRemoteDomain}`),
    },
    "services: serving nsmts.services.v1",
  );
  return {
    model,
    async stop() {
      await Promise.all(sources.map((s) => s.stop()));
      channel?.close();
      model.close();
    },
  };
}

/**
 * Another domain's endpoint as a backend of this domain's service of the same name: it serves `web@domain`, which
 * is `web` there, so it joins `web` here (below the local backends); its name `web-1@domain` becomes `web-1.domain`,
 * since backend names carry no `@`.
 */
function asLocalBackend(nse: NetworkServiceEndpoint): NetworkServiceEndpoint {
  const local = dnsresolve.mapNames(nse, dnsresolve.targetOf);
  if (dnsresolve.isInterdomain(nse.name)) local.name = `${dnsresolve.targetOf(nse.name)}.${dnsresolve.domainOf(nse.name)}`;
  return local;
}
