/**
 * cmd-endpoint's wiring (an ICMP-responder style NSE): identity → the standard endpoint chain with
 * point-to-point IPAM from NSM_CIDR_PREFIX (or, with NSM_IPAM_URL + NSM_SUBNET, from a subnet of the resource
 * manager) and the mechanisms it accepts → listen (NSM_LISTEN_ON, or a unix socket in a new temp directory) →
 * register the endpoint (and, with NSM_REGISTER_SERVICE, its services) at NSM_CONNECT_TO, kept fresh → health
 * SERVING → wait for the abort signal → unregister, drain, clean up.
 */

import { once } from "node:events";
import { MechanismType } from "@nsm-ts/api/constants";
import type { Connection } from "@nsm-ts/api/networkservice";
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { type RunContext, serverLimits } from "@nsm-ts/base/config";
import { CallContext } from "@nsm-ts/base/context";
import { createServer, dial } from "@nsm-ts/base/grpc";
import type { Logger } from "@nsm-ts/base/log";
import { startObservability } from "@nsm-ts/base/metrics";
import { spiffeIdMatcher } from "@nsm-ts/base/policy";
import { listenTarget, programIdentity } from "@nsm-ts/base/program";
import { dnscontext, endpoint, ipam, mechanisms, type NetworkServiceElement, passThrough } from "@nsm-ts/sdk/networkservice";
import { createRegistryClient, endpointEntry, ensureNetworkServices } from "@nsm-ts/sdk/registry";
import { kernel } from "@nsm-ts/sdk-linux";
import type { Config } from "./config.js";

/** The addresses of a connection, as log fields. */
function addressesOf(conn: Connection): { src: string[]; dst: string[] } {
  const ip = conn.context?.ipContext;
  return { src: ip?.srcIpAddrs ?? [], dst: ip?.dstIpAddrs ?? [] };
}

/**
 * Logs each connection this endpoint establishes, refreshes and closes (with its id), so an operator can follow
 * a connection through the logs of every hop, and reports how many are open (`onCount`) for the idle timeout.
 * Place last, where the connection is complete.
 */
function connectionLog(log: Logger, onCount: (open: number) => void): NetworkServiceElement {
  const known = new Set<string>();
  return {
    name: "endpoint-log",
    async request(ctx, req, next) {
      const conn = await next.request(ctx, req);
      const first = !known.has(conn.id);
      known.add(conn.id);
      onCount(known.size);
      log.info(
        { connId: conn.id, networkService: conn.networkService, mechanism: conn.mechanism?.type, ...addressesOf(conn) },
        first ? "connection established" : "connection refreshed",
      );
      return conn;
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        known.delete(conn.id);
        onCount(known.size);
        log.info({ connId: conn.id, networkService: conn.networkService }, "connection closed");
      }
    },
  };
}

/**
 * NSM_IDLE_TIMEOUT: aborts `signal` once no connection has been open for `timeoutMs` (0 = never), so an
 * endpoint started for one job goes away after it.
 */
function idleTimer(timeoutMs: number, log: Logger): { signal: AbortSignal; count(open: number): void; dispose(): void } {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  return {
    signal: ac.signal,
    count(open) {
      if (timeoutMs <= 0 || ac.signal.aborted) return;
      clearTimeout(timer);
      timer = undefined;
      if (open > 0) return;
      timer = setTimeout(() => {
        log.info({ idleTimeoutMs: timeoutMs }, "no connections for NSM_IDLE_TIMEOUT; exiting");
        ac.abort();
      }, timeoutMs);
    },
    dispose: () => clearTimeout(timer),
  };
}

/** Runs cmd-endpoint until `ctx.signal` aborts, then unregisters and stops serving. */
export async function run(cfg: Config, ctx: RunContext): Promise<void> {
  const log = ctx.log;

  const id = await programIdentity("cmd-endpoint", cfg, log, { signal: ctx.signal });
  const idle = idleTimer(cfg.idleTimeout, log);
  const lifetime = new AbortController();
  let removeListenDir: () => void = () => undefined;
  const obs = await startObservability(cfg, { program: "cmd-endpoint", log });
  const server = createServer({
    ...id.serverOptions,
    ...serverLimits(cfg),
    log,
    interceptors: obs.serverInterceptors,
  });
  server.health.set("", "NOT_SERVING");
  const registryChannel = dial(cfg.connectTo, { ...id.dialOptions, interceptors: obs.clientInterceptors });
  // The nsmgr is often starting at the same moment (a pod restart, npm start): retry sooner than the 1 s default.
  const retry = { intervalMs: 250 };
  const nseClient = createRegistryClient("nse", registryChannel, {
    tokenGenerator: id.tokenGenerator,
    signal: lifetime.signal,
    heal: true,
    retry,
  });
  // heal for the service too: a registry restarted empty must get it back, or clients cannot find us any more.
  const nsClient = createRegistryClient("ns", registryChannel, {
    tokenGenerator: id.tokenGenerator,
    signal: lifetime.signal,
    heal: true,
    retry,
  });
  // Registration stops at SIGTERM too, so a missing nsmgr cannot hold the shutdown for the retry budget.
  const regCtx = (): CallContext => CallContext.create({ log, signal: AbortSignal.any([ctx.signal, lifetime.signal]) });
  let registered: NetworkServiceEndpoint | undefined;
  // NSM_IPAM_URL + NSM_SUBNET: addresses live as ports in the resource manager, so they survive a restart.
  const ipamChannel =
    cfg.ipamUrl === undefined ? undefined : dial(cfg.ipamUrl, { ...id.dialOptions, interceptors: obs.clientInterceptors });
  try {
    const ep = endpoint({
      name: cfg.name,
      tokenGenerator: id.tokenGenerator,
      insecure: id.insecure,
      ...(cfg.trustedHops === undefined ? {} : { trustedHops: spiffeIdMatcher(cfg.trustedHops) }),
      log,
      additional: [
        ipamChannel !== undefined && cfg.subnet !== undefined
          ? ipam.resourceipam.newServer({
              channel: ipamChannel,
              subnetId: cfg.subnet,
              describe: `NSM_IPAM_URL=${cfg.ipamUrl} (NSM_SUBNET=${cfg.subnet})`,
              securityGroups: cfg.securityGroups,
            })
          : ipam.point2pointipam.newServer(ipam.createAddressPool(cfg.cidrPrefix)),
        // The data plane belongs to the forwarder: for KERNEL we only name our netns and the interface, NOOP has none.
        mechanisms.newServer({ [MechanismType.KERNEL]: kernel.newServer(), [MechanismType.NOOP]: passThrough }),
        connectionLog(log, idle.count),
        ...(cfg.dnsConfigs.length > 0 ? [dnscontext.newServer(cfg.dnsConfigs)] : []),
      ],
    });
    ep.serve(server);
    const held = ep.monitor;
    obs.metrics?.countConnections(() => held.size);

    const listen = listenTarget(cfg.listenOn, "nsm-endpoint-", "endpoint.sock");
    removeListenDir = listen.cleanup;
    const url = await server.listen(listen.url);

    if (cfg.registerService) await ensureNetworkServices(nsClient, regCtx, cfg.serviceNames, cfg.payload, log);
    const entry = endpointEntry(cfg.name, url, cfg.serviceNames, cfg.labels);
    registered = await nseClient.register(regCtx(), entry);
    server.health.set("", "SERVING");
    log.info(
      {
        url,
        registry: cfg.connectTo,
        services: cfg.serviceNames,
        labels: cfg.labels,
        ...(ipamChannel === undefined ? { cidrPrefix: cfg.cidrPrefix } : { ipamUrl: cfg.ipamUrl, subnet: cfg.subnet }),
        expires: registered.expirationTime ? new Date(Number(registered.expirationTime.seconds) * 1000).toISOString() : undefined,
        spiffeId: id.identity.spiffeId,
      },
      "cmd-endpoint serving",
    );
    idle.count(0);
    const stop = AbortSignal.any([ctx.signal, idle.signal]);
    if (!stop.aborted) await once(stop, "abort");
    log.info("cmd-endpoint shutting down");
  } catch (err) {
    // A start interrupted by SIGTERM is a normal shutdown, whatever error the interrupted call reported.
    if (!ctx.signal.aborted) throw err;
  } finally {
    idle.dispose();
    server.health.set("", "NOT_SERVING");
    if (registered) {
      try {
        // Unregister first, so no new request picks this endpoint while it drains; briefly: when the nsmgr is gone
        // too (a node drain), the registration expires on its own and the exit must not wait for retries.
        await nseClient.unregister(CallContext.create({ log, deadline: Date.now() + 1000 }), registered);
        log.info({ name: registered.name }, "unregistered");
      } catch (err) {
        log.warn({ err }, "unregister failed; the registration expires on its own");
      }
    }
    lifetime.abort();
    await server.close();
    registryChannel.close();
    ipamChannel?.close();
    await obs.close();
    removeListenDir();
  }
}
