/**
 * cmd-registry's services: the `nsmts.services.v1` API on the registry's server, ServiceIPs and instance IPs
 * allocated by the resource managers from the configured ranges, this registry's endpoints as the "registry"
 * source (in-process, from the store), and optionally another registry as the lower-priority "remote" source.
 */
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import type { Channel, NsmServer } from "@nsm-ts/base/grpc";
import type { Logger } from "@nsm-ts/base/log";
import type { ResourceManagers } from "@nsm-ts/resources";
import type { RegistryStore } from "@nsm-ts/sdk/registry";
import {
  createResourceAllocator,
  type RegistrySource,
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
  if (cfg.servicesRemoteRegistryUrl !== undefined) {
    channel = deps.dial(cfg.servicesRemoteRegistryUrl);
    sources.push(
      startRegistrySource({
        model,
        source: "remote",
        find: remoteFind(channel),
        log,
        retryMs: cfg.servicesRemoteRetry,
        dropOnFailure: true,
      }),
    );
  }
  log.info(
    {
      ranges: {
        roundRobin: cfg.servicesRoundRobinRange ?? null,
        closest: cfg.servicesClosestRange ?? null,
        consistentHash: cfg.servicesConsistentHashRange ?? null,
        instance: cfg.servicesInstanceRange ?? null,
      },
      remote: cfg.servicesRemoteRegistryUrl ?? null,
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
