/**
 * cmd-nse-vl3's wiring: identity → IP forwarding on in its netns → a prefix from the prefix server
 * (NSM_PREFIX_SERVER_URL, the first of its list that answers, held for the life of the stream) → the standard endpoint chain with vl3mtu, the vL3
 * IPAM, the member hook and the mechanisms → listen → register (and its service) at NSM_CONNECT_TO → health
 * SERVING → the peer mesh (a client connection to every other vL3 endpoint of the service whose name sorts before
 * ours, followed through a registry watch) → wait for the abort signal → close the peers, unregister, stop the
 * member-name server (NSM_DNS_ENABLED, started once the prefix is known), drain, give the prefix back.
 */
import { once } from "node:events";
import { MechanismType, Payload } from "@nsm-ts/api/constants";
import { State } from "@nsm-ts/api/networkservice";
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { type RunContext, serverLimits } from "@nsm-ts/base/config";
import { CallContext } from "@nsm-ts/base/context";
import { createServer, dial } from "@nsm-ts/base/grpc";
import { startObservability } from "@nsm-ts/base/metrics";
import { listenTarget, programIdentity } from "@nsm-ts/base/program";
import { client, endpoint, ipam, mechanisms, type NetworkServiceElement, passThrough, vl3mtu } from "@nsm-ts/sdk/networkservice";
import { createRegistryClient, endpointEntry, ensureNetworkServices } from "@nsm-ts/sdk/registry";
import { kernel, netnsInodeUrl } from "@nsm-ts/sdk-linux";
import type { Config } from "./config.js";
import { createMemberDns } from "./dns.js";
import { enableForwarding } from "./forwarding.js";
import { memberLog, peerMembers } from "./members.js";

/** Extensions of the program that are not configuration (a library embedding it, the DNS server of members). */
export interface RunOptions {
  /**
   * Told of every member that joins, is refreshed or leaves, with its name, labels and vL3 addresses: clients
   * and the peer endpoints that connect to us (endpoint side), and the peer endpoints we connect to (`peer: true`,
   * `connId` of our connection, the peer's own address). The hook for a server of member names
   * (`<client name>.<service>.`) that fans out to its peers. Default: log only.
   */
  members?: ipam.vl3.Vl3MemberListener;
  /**
   * Elements of the endpoint chain after the vL3 IPAM and the member hook, before the mechanisms (e.g. one that
   * writes `dns_context` pointing clients at the endpoint's own address `vl3.selfIp`). Default none.
   */
  additional?: (vl3: { ipam: ipam.vl3.Vl3Ipam; networkService: string }) => NetworkServiceElement[];
}

/** Runs cmd-nse-vl3 until `ctx.signal` aborts, then leaves the vL3 network and stops serving. */
export async function run(cfg: Config, ctx: RunContext, opts: RunOptions = {}): Promise<void> {
  const log = ctx.log;
  const service = cfg.serviceNames[0] ?? "vL3";
  const id = await programIdentity("cmd-nse-vl3", cfg, log, { signal: ctx.signal });
  const lifetime = new AbortController();
  const stop = AbortSignal.any([ctx.signal, lifetime.signal]);
  let removeListenDir: () => void = () => undefined;
  const obs = await startObservability(cfg, { program: "cmd-nse-vl3", log });
  const server = createServer({
    ...id.serverOptions,
    ...serverLimits(cfg),
    log,
    interceptors: obs.serverInterceptors,
  });
  server.health.set("", "NOT_SERVING");
  const restoreForwarding = enableForwarding(log);
  const dialOpts = { ...id.dialOptions, interceptors: obs.clientInterceptors };
  const registryChannel = dial(cfg.connectTo, dialOpts);
  const prefixChannels = cfg.prefixServerUrls.map((u) => dial(u, dialOpts));
  const retry = { intervalMs: 250 };
  const nseClient = createRegistryClient("nse", registryChannel, {
    tokenGenerator: id.tokenGenerator,
    signal: lifetime.signal,
    heal: true,
    retry,
  });
  const nsClient = createRegistryClient("ns", registryChannel, {
    tokenGenerator: id.tokenGenerator,
    signal: lifetime.signal,
    heal: true,
    retry,
  });
  const regCtx = (): CallContext => CallContext.create({ log, signal: stop });

  const v = ipam.vl3.createVl3Ipam();
  const prefixes = ipam.vl3.startPrefixClient(prefixChannels, v, {
    signal: lifetime.signal,
    log,
    describe: cfg.prefixServerUrls.map((u) => `NSM_PREFIX_SERVER_URL=${u}`),
  });
  const mtu = vl3mtu.createVl3MtuState();
  let registered: NetworkServiceEndpoint | undefined;
  let peers: ipam.vl3.Vl3Peers | undefined;
  let dnsClose = async (): Promise<void> => undefined;
  const peerClient = client({
    name: cfg.name,
    connectTo: cfg.connectTo,
    tokenGenerator: id.tokenGenerator,
    insecure: id.insecure,
    ...(id.dialOptions.tls ? { tls: id.dialOptions.tls } : {}),
    requestTimeoutMs: cfg.requestTimeout,
    interceptors: obs.clientInterceptors,
    additional: [vl3mtu.newClient(mtu), ipam.vl3.newClient(v), mechanisms.kernel.newClient()],
    // KERNEL first (a kernel forwarder puts the peer link into our netns); NOOP for a forwarder without a data plane.
    mechanismPreferences: [mechanisms.kernel.mechanism({ netnsUrl: netnsInodeUrl() }), mechanisms.noop.mechanism()],
    log,
  });
  try {
    // A signal that came during start-up has already fired: "abort" would never come again.
    const prefix = stop.aborted ? undefined : await Promise.race([prefixes.ready, once(stop, "abort").then(() => undefined)]);
    if (prefix === undefined) return;
    // Our member-name server unless the embedder brings its own member listener.
    const dns =
      opts.members === undefined && cfg.dnsEnabled
        ? createMemberDns({
            nameTemplates: cfg.dnsTemplates,
            port: cfg.dnsPort,
            log,
            ...(obs.metrics ? { registry: obs.metrics.registry } : {}),
          })
        : undefined;
    dnsClose = async () => {
      await dns?.close();
    };
    await dns?.start(v);
    const members = opts.members ?? dns?.members ?? memberLog(log);
    const ep = endpoint({
      name: cfg.name,
      tokenGenerator: id.tokenGenerator,
      insecure: id.insecure,
      log,
      additional: [
        vl3mtu.newServer(mtu),
        ipam.vl3.newServer(v, cfg.vl3Prefix === undefined ? {} : { globalPrefix: cfg.vl3Prefix }),
        ipam.vl3.newMemberServer(members),
        ...(dns?.elements({ ipam: v, networkService: service }) ?? []),
        ...(opts.additional?.({ ipam: v, networkService: service }) ?? []),
        // The data plane belongs to the forwarder: for KERNEL we only name our netns and the interface, NOOP has none.
        mechanisms.newServer({ [MechanismType.KERNEL]: kernel.newServer(), [MechanismType.NOOP]: passThrough }),
      ],
    });
    ep.serve(server);
    const held = ep.monitor;
    obs.metrics?.countConnections(() => held.size);
    // A smaller MTU somewhere in the network (a VXLAN leg): the clients refresh and get it too.
    mtu.onLowered((ids, value) => {
      log.info({ mtu: value, connections: ids.length }, "vL3 MTU lowered; asking the clients to refresh");
      for (const connId of ids) held.setState(connId, State.REFRESH_REQUESTED);
    });
    // A new prefix (the prefix server lost ours): the clients refresh and get addresses of the new one.
    v.subscribe(() => {
      log.info({ prefix: v.prefix }, "vL3 prefix changed; asking the clients to refresh");
      for (const c of held.connections()) held.setState(c.id, State.REFRESH_REQUESTED);
    });

    const listen = listenTarget(cfg.listenOn, "nsm-vl3-", "endpoint.sock");
    removeListenDir = listen.cleanup;
    const url = await server.listen(listen.url);
    if (cfg.registerService) await ensureNetworkServices(nsClient, regCtx, cfg.serviceNames, Payload.IP, log);
    const entry = endpointEntry(cfg.name, url, cfg.serviceNames, cfg.labels);
    registered = await nseClient.register(regCtx(), entry);
    server.health.set("", "SERVING");
    peers = ipam.vl3.createVl3Peers({
      name: cfg.name,
      networkService: service,
      registry: nseClient,
      client: peerClient,
      labels: cfg.requestLabels,
      log,
      onPeer: peerMembers(members, log),
    });
    log.info(
      { url, registry: cfg.connectTo, service, prefix, address: v.selfAddress, vl3Prefix: cfg.vl3Prefix ?? v.defaultGlobalPrefix() },
      "cmd-nse-vl3 serving",
    );
    if (!stop.aborted) await once(stop, "abort");
    log.info("cmd-nse-vl3 shutting down");
  } catch (err) {
    // A start interrupted by SIGTERM is a normal shutdown, whatever error the interrupted call reported.
    if (!ctx.signal.aborted) throw err;
  } finally {
    server.health.set("", "NOT_SERVING");
    // Leave the network first: the peers' routes to us go with the connections.
    await peers?.close();
    await peerClient.dispose();
    if (registered && cfg.unregisterItself) {
      try {
        await nseClient.unregister(CallContext.create({ log, deadline: Date.now() + 1000 }), registered);
        log.info({ name: registered.name }, "unregistered");
      } catch (err) {
        log.warn({ err }, "unregister failed; the registration expires on its own");
      }
    }
    lifetime.abort();
    await dnsClose();
    await prefixes.close();
    await server.close();
    registryChannel.close();
    for (const ch of prefixChannels) ch.close();
    restoreForwarding();
    await obs.close();
    removeListenDir();
  }
}
