/**
 * cmd-registry's wiring: an identity (SPIFFE Workload API, certificate files, or the insecure dev mode with a warning), the stores the
 * configuration selects (memory, or etcd shared by replicas), the registry server chains, both registry services
 * on every listen URL (health SERVING for each), the resource managers (also over Connect HTTP when
 * `NSM_CONNECT_LISTEN_ON` is set; their DNS records on `NSM_RESOURCES_DNS_LISTEN_ON`), and a graceful shutdown when
 * `ctx.signal` aborts. Interdomain names go to `NSM_PROXY_REGISTRY_URL`; `NSM_REGISTRY_MODE=proxy-dns` runs the
 * registry proxy instead (`proxydns.ts`).
 */
import { once } from "node:events";
import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import { type RunContext, serverLimits } from "@nsm-ts/base/config";
import {
  type ConnectListener,
  type ConnectRoute,
  createConnectHandler,
  listenConnect,
  readOnlyRoute,
  withConnectRoutes,
} from "@nsm-ts/base/connect";
import { createServer, dial } from "@nsm-ts/base/grpc";
import { startObservability } from "@nsm-ts/base/metrics";
import { programIdentity } from "@nsm-ts/base/program";
import {
  createEtcdResourceStore,
  createMemoryResourceStore,
  followDnsRecords,
  registerResourceManagers,
  resourceConnectRoutes,
} from "@nsm-ts/resources";
import { createMemberDnsServer, type MemberDnsServer, MemoryRecords } from "@nsm-ts/sdk/dns";
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
import { runProxyDns } from "./proxydns.js";
import { startServices } from "./services.js";

function storesOf(cfg: Config, ctx: RunContext): { ns: RegistryStore<RegistryEntryOf["ns"]>; nse: RegistryStore<RegistryEntryOf["nse"]> } {
  if (cfg.registryStore.kind === "etcd") {
    const endpoints = cfg.registryStore.endpoints;
    return {
      ns: createEtcdStore("ns", { endpoints, log: ctx.log, loadAtStart: true }),
      nse: createEtcdStore("nse", { endpoints, log: ctx.log, loadAtStart: true }),
    };
  }
  return { ns: createMemoryStore("ns"), nse: createMemoryStore("nse") };
}

/** Runs cmd-registry until `ctx.signal` aborts, then stops serving and closes the stores. */
export async function run(cfg: Config, ctx: RunContext): Promise<void> {
  if (cfg.mode === "proxy-dns") return runProxyDns(cfg, ctx);
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
    ...serverLimits(cfg),
    log: ctx.log,
    interceptors: obs.serverInterceptors,
  });
  // Interdomain names leave for this domain's nsmgr-proxy (NSM_PROXY_REGISTRY_URL).
  const proxyRegistry =
    cfg.proxyRegistryUrl === undefined ? undefined : dial(cfg.proxyRegistryUrl, { ...dialOptions, interceptors: obs.clientInterceptors });
  let services: Awaited<ReturnType<typeof startServices>> | undefined;
  let connect: ConnectListener | undefined;
  let dns: MemberDnsServer | undefined;
  let dnsAddress: string | undefined;
  let feeding: Promise<void> = Promise.resolve();
  const stopFeed = new AbortController();
  try {
    const chains = createRegistryServer({
      tokenGenerator,
      nsStore: stores.ns,
      nseStore: stores.nse,
      expirePeriodMs: cfg.expirePeriod,
      ...(cfg.registrars === undefined ? {} : { registrars: authorize.registrarPatterns(cfg.registrars) }),
      ...(proxyRegistry === undefined ? {} : { proxyRegistry }),
    });
    serveRegistry(server, chains, { log: ctx.log });
    // Services no endpoint lists any more are collected (upstream keeps them forever; see the README).
    const collecting = startServiceCollector(stores.ns, stores.nse, { periodMs: cfg.expirePeriod, log: ctx.log, signal: ctx.signal });
    const resources = registerResourceManagers(server, {
      store: resourceStore,
      log: ctx.log,
      admins: cfg.resourcesAdmins ?? [],
      heartbeatTimeoutMs: cfg.nodeHeartbeatTimeout,
      signal: ctx.signal,
      ...(cfg.ipamPrefixPool === undefined ? {} : { prefixPool: { prefix: cfg.ipamPrefixPool, prefixLength: cfg.ipamPrefixLength } }),
    });
    // The services API is registered through a view that also collects its handlers for the Connect listener.
    const serviceRoutes: ConnectRoute[] = [];
    services = await startServices(withConnectRoutes(server, serviceRoutes), cfg, {
      managers: resources.managers,
      nseStore: stores.nse,
      log: ctx.log,
      dial: (url) => dial(url, dialOptions),
      registry: chains.nse,
    });
    const urls: string[] = [];
    for (const url of cfg.listenOn) urls.push(await server.listen(url));
    if (cfg.connectListenOn !== undefined) {
      // Plain HTTP carries no identity: with TLS configured, Connect callers may read and watch but not write.
      const anonymousWrites = serverOptions.tls === undefined;
      const routes = [
        ...resourceConnectRoutes(resources, { anonymousWrites }),
        ...(anonymousWrites ? serviceRoutes : serviceRoutes.map((r) => readOnlyRoute(r, "cmd-registry"))),
      ];
      connect = await listenConnect(cfg.connectListenOn, createConnectHandler(routes, { log: ctx.log, what: "cmd-registry" }));
    }
    if (cfg.resourcesDnsListenOn !== undefined) {
      // The DNS records of the resource managers, answered by the same member-name server a vL3 endpoint runs.
      const records = new MemoryRecords();
      dns = createMemberDnsServer(records, { log: ctx.log });
      const at = await dns.listen(cfg.resourcesDnsListenOn);
      dnsAddress = `${at.host}:${at.port}`;
      feeding = followDnsRecords(resourceStore, records, { signal: AbortSignal.any([ctx.signal, stopFeed.signal]), log: ctx.log });
    }
    ctx.log.info(
      {
        urls,
        connectUrl: connect?.url,
        dnsAddress,
        store: cfg.registryStore,
        expirePeriodMs: cfg.expirePeriod,
        spiffeId: identity.spiffeId,
        registrars: cfg.registrars ?? "nsmgr rule",
        resourcesAdmins: cfg.resourcesAdmins ?? [],
        proxyRegistry: cfg.proxyRegistryUrl ?? "none",
      },
      "cmd-registry serving",
    );
    if (!ctx.signal.aborted) await once(ctx.signal, "abort");
    ctx.log.info("cmd-registry shutting down");
    await collecting;
  } finally {
    await connect?.close();
    stopFeed.abort();
    await dns?.close();
    await feeding;
    // The sources stop before the stores they follow close.
    await services?.stop();
    await server.close();
    proxyRegistry?.close();
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
