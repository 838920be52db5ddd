/**
 * ServiceIPs on this node (NSM_SERVICES_URL): follows the resolved services of the services API for this node,
 * keeps them in the service data plane (sdk-linux), which puts one nftables table per service into the namespace
 * of every KERNEL client this forwarder serves, and reports each service's status back (reconciled, pending,
 * error with the message). Runs until the signal aborts; the tables go with the clients' Close, and whatever is
 * left when the forwarder stops is removed.
 */
import {
  BackendHealth,
  BalancingPolicy,
  Protocol,
  type ResolvedBackend,
  type ResolvedFrontend,
  type ResolvedService,
} from "@nsm-ts/api/services";
import type { Clock } from "@nsm-ts/base/clock";
import { type DialOptions, dial } from "@nsm-ts/base/grpc";
import type { Logger } from "@nsm-ts/base/log";
import { nft, services } from "@nsm-ts/sdk-linux";
import { followResolvedServices, ReconcileState, reportReconcileStatus, servicesClient } from "@nsm-ts/services";

/** The plain data-plane protocol of an API protocol; address-only frontends (port 0) take every protocol. */
function protocolOf(p: Protocol, port: number): services.ServiceProtocol {
  if (port === 0) return "any";
  return p === Protocol.UDP ? "udp" : p === Protocol.SCTP ? "sctp" : "tcp";
}

function policyOf(p: BalancingPolicy): services.BalancingPolicy {
  return p === BalancingPolicy.CLOSEST ? "closest" : p === BalancingPolicy.CONSISTENT_HASH ? "consistent-hash" : "round-robin";
}

function healthOf(h: BackendHealth): services.BackendHealth {
  return h === BackendHealth.UNHEALTHY ? "unhealthy" : h === BackendHealth.DRAINING ? "draining" : "healthy";
}

/** The data plane's view of a resolved service. */
export function viewOf(s: ResolvedService): services.ServiceView {
  const fe = (f: ResolvedFrontend): services.ServiceFrontend => ({
    address: f.address,
    port: f.port,
    protocol: protocolOf(f.protocol, f.port),
    policy: policyOf(f.policy),
    portName: f.portName,
  });
  const be = (b: ResolvedBackend): services.ServiceBackend => ({
    name: b.name,
    address: b.address,
    port: b.port,
    protocol: protocolOf(b.protocol, b.port),
    portName: b.portName,
    node: b.node,
    zone: b.zone,
    weight: b.weight === 0 ? 1 : b.weight,
    health: healthOf(b.health),
  });
  return {
    name: s.name,
    revision: s.revision,
    frontends: s.frontends.map(fe),
    backends: s.backends.map(be),
    ...(s.sessionAffinitySeconds > 0 ? { sessionAffinitySeconds: s.sessionAffinitySeconds } : {}),
  };
}

const stateOf: Record<services.ServiceRulesStatus["state"], ReconcileState> = {
  pending: ReconcileState.PENDING,
  reconciled: ReconcileState.RECONCILED,
  error: ReconcileState.ERROR,
};

/** Options of `startServices`. */
export interface ServicesOptions {
  readonly url: string;
  readonly node: string;
  readonly zone: string;
  readonly dialOptions: DialOptions;
  readonly log: Logger;
  readonly signal: AbortSignal;
  readonly clock?: Clock;
}

/** The running service data plane of this forwarder. */
export interface ForwarderServices {
  readonly dataplane: services.ServiceDataplane;
  /** Resolves once following and reporting stopped and every service table of ours is gone. */
  readonly stopped: Promise<void>;
}

/** Starts following the services API and programming client namespaces (see the header comment). */
export function startServices(opts: ServicesOptions): ForwarderServices {
  const { log, signal } = opts;
  const dp = services.createServiceDataplane({
    signal,
    where: { node: opts.node, zone: opts.zone },
    log,
    ...(opts.clock === undefined ? {} : { clock: opts.clock }),
  });
  const channel = dial(opts.url, opts.dialOptions);
  const { dataPlane } = servicesClient(channel);

  const follow = (async () => {
    for await (const u of followResolvedServices(dataPlane, {
      node: opts.node,
      signal,
      log,
      ...(opts.clock ? { clock: opts.clock } : {}),
    })) {
      if (u.kind === "upsert") {
        try {
          await dp.upsert(viewOf(u.service));
        } catch (err) {
          log.warn({ err, service: u.service.name }, "services: cannot program the service");
          await reportReconcileStatus(dataPlane, {
            node: opts.node,
            service: u.service.name,
            state: ReconcileState.ERROR,
            message: (err as Error).message,
            revision: u.service.revision,
          }).catch(() => undefined);
        }
      } else if (u.kind === "delete") await dp.remove(u.name);
      else dp.synced();
    }
  })();

  // One report per change of a service's node-wide status (error beats pending beats reconciled).
  const report = (async () => {
    const last = new Map<string, string>();
    for await (const s of dp.watchStatus(signal)) {
      const agg = dp.serviceStatus(s.service) ?? s;
      const key = `${agg.state}|${agg.revision}|${agg.message ?? ""}`;
      if (last.get(agg.service) === key) continue;
      last.set(agg.service, key);
      await reportReconcileStatus(
        dataPlane,
        { node: opts.node, service: agg.service, state: stateOf[agg.state], message: agg.message ?? "", revision: agg.revision },
        signal,
      ).catch((err: unknown) => {
        if (!signal.aborted) log.warn({ err, service: agg.service }, "services: reporting the status failed");
      });
    }
  })();

  const stopped = (async () => {
    await Promise.allSettled([follow, report, dp.stopped]);
    channel.close();
    // Connections still open at shutdown keep no ServiceIP rules of ours behind. Only namespaces this forwarder
    // programmed: another forwarder on the same host has its own.
    const namespaces = dp.namespaces().map((ns) => ns.url);
    const removed =
      namespaces.length === 0
        ? []
        : await nft.removeNftLeftovers(undefined, { prefix: services.SERVICE_TABLE_PREFIX, namespaces }).catch((err: unknown) => {
            log.warn({ err }, "services: removing service tables at shutdown failed");
            return [];
          });
    if (removed.length > 0) log.info({ tables: removed.length }, "services: removed service tables at shutdown");
  })();
  return { dataplane: dp, stopped };
}
