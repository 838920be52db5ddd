/**
 * cmd-forwarder's wiring: identity → the data-plane backend (NOOP, or KERNEL through sdk-linux after checking
 * the privileges it needs) → listen (NSM_LISTEN_ON, or a unix socket in a new temp directory) → the forwarder
 * chain, registered at its nsmgr as an endpoint of network service `forwarder` with NSM_LABELS → health SERVING →
 * wait for the abort signal → unregister, drain, clean up.
 */
import { once } from "node:events";
import { NodeManager } from "@nsm-ts/api/resources";
import { type RunContext, serverLimits } from "@nsm-ts/base/config";
import { createClient, createServer, dial } from "@nsm-ts/base/grpc";
import { startObservability } from "@nsm-ts/base/metrics";
import { spiffeIdMatcher } from "@nsm-ts/base/policy";
import { listenTarget, programIdentity } from "@nsm-ts/base/program";
import { runNodeHeartbeats } from "@nsm-ts/resources";
import { createForwarder, type ForwarderOptions } from "@nsm-ts/sdk/networkservice";
import { adoptOrRemoveLeftovers, checkKernelCapable, createKernelForwarder, enforcement, services } from "@nsm-ts/sdk-linux";
import type { Config } from "./config.js";
import { type ForwarderServices, startServices } from "./services.js";

/**
 * The data-plane elements of NSM_FORWARDER_MECHANISM. KERNEL checks the privileges first (failing the start with
 * a message that says what is missing), then takes stock of the links a previous instance of this forwarder left
 * behind: they keep carrying traffic while their connections heal or refresh through us, which adopts them
 * (same interfaces, no blip); what is still unclaimed after NSM_LEFTOVER_ADOPT_PERIOD is removed.
 */
async function dataPlaneOf(
  cfg: Config,
  ctx: RunContext,
  enforcer: enforcement.Enforcer | undefined,
): Promise<Pick<ForwarderOptions, "mechanisms" | "clientMechanisms"> & { xconnects?: ReadonlySet<string>; stopSweep?: () => void }> {
  if (cfg.forwarderMechanism === "NOOP") return {};
  try {
    await checkKernelCapable();
  } catch (err) {
    throw new Error(`cmd-forwarder: NSM_FORWARDER_MECHANISM=KERNEL cannot run here: ${(err as Error).message}`, { cause: err });
  }
  const kernel = createKernelForwarder({
    owner: cfg.name,
    ...(cfg.tunnelIp === undefined ? {} : { tunnelIp: cfg.tunnelIp }),
    vxlanPort: cfg.vxlanPort,
    ip: { mode: cfg.ipMode },
    log: ctx.log,
    ...(enforcer === undefined ? {} : { enforcer }),
  });
  if (cfg.tunnelIp === undefined) ctx.log.warn("NSM_TUNNEL_IP is unset: KERNEL serves local connections only (no VXLAN to other nodes)");
  const planes = { mechanisms: kernel.mechanisms, clientMechanisms: kernel.clientMechanisms, xconnects: kernel.xconnects };
  if (cfg.leftoverAdoptPeriod === 0) {
    const report = await adoptOrRemoveLeftovers(cfg.name, []);
    if (report.removed.length > 0) ctx.log.info({ removed: report.removed }, "removed links left by a previous run");
    return planes;
  }
  // Listing with everything active removes nothing.
  const found = await adoptOrRemoveLeftovers(cfg.name, () => true);
  const leftIds = new Set(found.adopted.flatMap((a) => (a.link.owner ? [a.link.owner.connectionId] : [])));
  if (leftIds.size === 0) return planes;
  ctx.log.info(
    { connections: leftIds.size, links: found.adopted.length, adoptPeriodMs: cfg.leftoverAdoptPeriod },
    "keeping links left by a previous run for their connections to adopt",
  );
  // Only the links found at start are candidates: connections made since are ours whatever their state.
  const sweep = async (): Promise<void> => {
    const report = await adoptOrRemoveLeftovers(cfg.name, (id) => !leftIds.has(id) || kernel.xconnects.has(id));
    ctx.log.info({ removed: report.removed }, "removed links left by a previous run that no connection adopted");
  };
  const timer = setTimeout(() => {
    sweep().catch((err: unknown) => ctx.log.warn({ err }, "removing unadopted leftovers failed"));
  }, cfg.leftoverAdoptPeriod);
  timer.unref();
  return { ...planes, stopSweep: () => clearTimeout(timer) };
}

/** Runs cmd-forwarder until `ctx.signal` aborts, then unregisters and stops serving. */
export async function run(cfg: Config, ctx: RunContext): Promise<void> {
  const log = ctx.log;
  const id = await programIdentity("cmd-forwarder", cfg, log, { signal: ctx.signal });
  // NSM_RESOURCES_URL: ports' security groups, route tables and policy routes on the clients' interfaces.
  const enfStop = new AbortController(); // stopped in `finally`, also when the start fails
  const resourcesChannel =
    cfg.resourcesUrl === undefined || cfg.forwarderMechanism !== "KERNEL" ? undefined : dial(cfg.resourcesUrl, id.dialOptions);
  const enforcer =
    resourcesChannel === undefined
      ? undefined
      : enforcement.createEnforcer({
          owner: cfg.name,
          view: enforcement.createGrpcResourceView(resourcesChannel, { describe: `NSM_RESOURCES_URL=${cfg.resourcesUrl}` }),
          signal: enfStop.signal,
          log,
        });
  // The same resource managers learn this node (name, tunnel IP, zone) and its heartbeats: the node manager takes a
  // node whose forwarder stopped beating out of service.
  const beating =
    resourcesChannel === undefined
      ? undefined
      : runNodeHeartbeats(
          createClient(NodeManager, resourcesChannel),
          {
            id: cfg.nodeName,
            ...(cfg.tunnelIp === undefined ? {} : { tunnelIp: cfg.tunnelIp }),
            labels: cfg.zone === "" ? {} : { "topology.kubernetes.io/zone": cfg.zone },
          },
          { signal: enfStop.signal, log },
        );
  const stopEnforcer = async (): Promise<void> => {
    enfStop.abort();
    await Promise.all([enforcer?.stopped, beating]);
    resourcesChannel?.close();
  };
  let planes: Awaited<ReturnType<typeof dataPlaneOf>>;
  try {
    planes = await dataPlaneOf(cfg, ctx, enforcer);
  } catch (err) {
    await stopEnforcer();
    throw err;
  }
  const { xconnects, stopSweep, ...kernelPlane } = planes;
  // ServiceIPs: the KERNEL element attaches each client's namespace to the services this node follows.
  const svcStop = new AbortController(); // stopped in `finally`, also when the start fails
  const svc: ForwarderServices | undefined =
    cfg.servicesUrl === undefined || kernelPlane.mechanisms === undefined
      ? undefined
      : startServices({
          url: cfg.servicesUrl,
          node: cfg.nodeName,
          zone: cfg.zone,
          dialOptions: id.dialOptions,
          log,
          signal: svcStop.signal,
        });
  const dataPlane =
    svc === undefined || kernelPlane.mechanisms === undefined
      ? kernelPlane
      : { ...kernelPlane, mechanisms: services.withServices(kernelPlane.mechanisms, svc.dataplane) };
  const obs = await startObservability(cfg, { program: "cmd-forwarder", log });
  if (xconnects)
    obs.metrics?.gauge("nsm_dataplane_interfaces", "Kernel cross-connects (interface sets) programmed now", () => xconnects.size);
  const server = createServer({
    ...id.serverOptions,
    ...serverLimits(cfg),
    log,
    interceptors: obs.serverInterceptors,
  });
  server.health.set("", "NOT_SERVING");
  let removeListenDir: () => void = () => undefined;
  let forwarder: ReturnType<typeof createForwarder> | undefined;
  let registered = false;
  try {
    const listen = listenTarget(cfg.listenOn, "nsm-forwarder-", "forwarder.sock");
    removeListenDir = listen.cleanup;
    const url = await server.listen(listen.url);
    forwarder = createForwarder({
      name: cfg.name,
      url,
      nsmgrUrl: cfg.connectTo,
      labels: cfg.labels,
      forwarderServiceName: cfg.networkServiceName,
      tokenGenerator: id.tokenGenerator,
      insecure: id.insecure,
      ...(cfg.trustedHops === undefined ? {} : { trustedHops: spiffeIdMatcher(cfg.trustedHops) }),
      dialOptions: { ...id.dialOptions, interceptors: obs.clientInterceptors },
      log,
      ...dataPlane,
    });
    const held = forwarder.monitor;
    obs.metrics?.countConnections(() => held.size);
    forwarder.serve(server, { log });
    // The registration retries for a while when the nsmgr is not there yet; SIGTERM must not wait for that.
    const aborted = new Promise<undefined>((resolve) => ctx.signal.addEventListener("abort", () => resolve(undefined), { once: true }));
    const registering = forwarder.register();
    registering.catch(() => undefined); // observed below; this only keeps a late rejection after SIGTERM handled
    const entry = await Promise.race([registering, aborted]);
    if (entry === undefined) return;
    registered = true;
    server.health.set("", "SERVING");
    log.info(
      {
        url,
        nsmgr: cfg.connectTo,
        mechanism: cfg.forwarderMechanism,
        ...(cfg.servicesUrl === undefined ? {} : { services: cfg.servicesUrl, node: cfg.nodeName, zone: cfg.zone }),
        ...(cfg.resourcesUrl === undefined ? {} : { resources: cfg.resourcesUrl }),
        networkService: cfg.networkServiceName,
        labels: cfg.labels,
        registeredAs: entry.name,
        spiffeId: id.identity.spiffeId,
      },
      "cmd-forwarder serving",
    );
    if (!ctx.signal.aborted) await once(ctx.signal, "abort");
    log.info("cmd-forwarder shutting down");
  } catch (err) {
    if (!ctx.signal.aborted) throw err;
  } finally {
    stopSweep?.();
    server.health.set("", "NOT_SERVING");
    if (forwarder) {
      try {
        await forwarder.close({ unregister: registered });
        if (registered) log.info("unregistered");
      } catch (err) {
        log.warn({ err }, "unregister failed; the registration expires on its own");
      }
    }
    await server.close();
    await stopEnforcer();
    svcStop.abort();
    await svc?.stopped;
    await obs.close();
    removeListenDir();
  }
}
