/**
 * cmd-registry's wiring: an identity (SPIFFE Workload API, certificate files, or the insecure dev mode with a warning), the stores the
 * configuration selects (memory, or etcd shared by replicas), the registry server chains, both registry services
 * on every listen URL (health SERVING for each), and a graceful shutdown when `ctx.signal` aborts.
 */
import { once } from "node:events";
import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import type { RunContext } from "@nsm-ts/base/config";
import { createServer, dial } from "@nsm-ts/base/grpc";
import { startObservability } from "@nsm-ts/base/metrics";
import { programIdentity } from "@nsm-ts/base/program";
import { createEtcdResourceStore, createMemoryResourceStore, registerResourceManagers } from "@nsm-ts/resources";
import {
  authorize,
  createEtcdStore,
  createMemoryStore,
  createRegistryServer,
  type RegistryEntryOf,
  type RegistryStore,
  serveRegistry,
  startServiceCollector,
} from "@nsm-ts/sdk/registry";
import type { Config } from "./config.js";
import { startServices } from "./services.js";

function storesOf(cfg: Config, ctx: RunContext): { ns: RegistryStore<RegistryEntryOf["ns"]>; nse: RegistryStore<RegistryEntryOf["nse"]> } {
  if (cfg.registryStore.kind === "etcd") {
    const endpoints = cfg.registryStore.endpoints;
    return {
      ns: createEtcdStore("ns", { endpoints, log: ctx.log }),
      nse: createEtcdStore("nse", { endpoints, log: ctx.log }),
    };
  }
  return { ns: createMemoryStore("ns"), nse: createMemoryStore("nse") };
}

/** Runs cmd-registry until `ctx.signal` aborts, then stops serving and closes the stores. */
export async function run(cfg: Config, ctx: RunContext): Promise<void> {
  const { identity, tokenGenerator, serverOptions, dialOptions } = await programIdentity("cmd-registry", cfg, ctx.log, {
    devWarning:
      "insecure dev mode: SPIFFE_ENDPOINT_SOCKET and NSM_TLS_CERT_FILE/NSM_TLS_KEY_FILE/NSM_TLS_CA_FILE are unset, so the registry serves without TLS " +
      "and trusts the identities in callers' tokens without verifying them; never run it like this in production",
    signal: ctx.signal,
  });
  const stores = storesOf(cfg, ctx);
  // The resource managers (IPs, MACs, ports, …) share the registry's store kind; etcd keys live under their own prefix.
  const resourceStore =
    cfg.registryStore.kind === "etcd"
      ? createEtcdResourceStore({ endpoints: cfg.registryStore.endpoints, log: ctx.log })
      : createMemoryResourceStore();
  const obs = await startObservability(cfg, { program: "cmd-registry", log: ctx.log });
  obs.metrics?.gauge(
    "nsm_registry_entries",
    "Registered entries by kind (ns, nse)",
    async () => [
      [{ kind: "ns" }, await countEntries(stores.ns, NetworkServiceSchema)],
      [{ kind: "nse" }, await countEntries(stores.nse, NetworkServiceEndpointSchema)],
    ],
    ["kind"],
  );
  const server = createServer({
    ...serverOptions,
    maxRecvMessageBytes: cfg.maxRecvMessageBytes,
    log: ctx.log,
    interceptors: obs.serverInterceptors,
  });
  try {
    const chains = createRegistryServer({
      tokenGenerator,
      nsStore: stores.ns,
      nseStore: stores.nse,
      expirePeriodMs: cfg.expirePeriod,
      ...(cfg.registrars === undefined ? {} : { registrars: authorize.registrarPatterns(cfg.registrars) }),
    });
    serveRegistry(server, chains, { log: ctx.log });
    // Services no endpoint lists any more are collected (upstream keeps them forever; see the README).
    const collecting = startServiceCollector(stores.ns, stores.nse, { periodMs: cfg.expirePeriod, log: ctx.log, signal: ctx.signal });
    const { managers } = registerResourceManagers(server, {
      store: resourceStore,
      log: ctx.log,
      admins: cfg.resourcesAdmins ?? [],
      ...(cfg.ipamPrefixPool === undefined ? {} : { prefixPool: { prefix: cfg.ipamPrefixPool, prefixLength: cfg.ipamPrefixLength } }),
    });
    const services = await startServices(server, cfg, {
      managers,
      nseStore: stores.nse,
      log: ctx.log,
      dial: (url) => dial(url, dialOptions),
    });
    const urls: string[] = [];
    for (const url of cfg.listenOn) urls.push(await server.listen(url));
    ctx.log.info(
      {
        urls,
        store: cfg.registryStore,
        expirePeriodMs: cfg.expirePeriod,
        spiffeId: identity.spiffeId,
        registrars: cfg.registrars ?? "nsmgr rule",
        resourcesAdmins: cfg.resourcesAdmins ?? [],
      },
      "cmd-registry serving",
    );
    if (!ctx.signal.aborted) await once(ctx.signal, "abort");
    ctx.log.info("cmd-registry shutting down");
    await collecting;
    await services.stop();
  } finally {
    await server.close();
    await Promise.allSettled([stores.ns.close(), stores.nse.close(), resourceStore.close(), obs.close()]);
  }
}

/** Number of entries in a store (a Find of everything without watching), for the entries gauge. */
async function countEntries<D extends DescMessage, T extends MessageShape<D> & (RegistryEntryOf["ns"] | RegistryEntryOf["nse"])>(
  store: RegistryStore<T>,
  schema: D,
): Promise<number> {
  let n = 0;
  const all = create(schema) as T; // an empty template matches every entry
  for await (const ev of store.find(all, { watch: false, signal: new AbortController().signal })) if (!ev.deleted) n++;
  return n;
}
