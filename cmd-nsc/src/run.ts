/**
 * cmd-nsc's client mode: identity → the standard client chain to the node's nsmgr (refresh, heal, retry) →
 * one Request per NSM_NETWORK_SERVICES entry → log each connection (`connected`, then `connection refreshed` on
 * every refresh or heal) and publish it with its heal state in the state file (`<NSM_STATE_DIR>/<NSM_NAME>.json`,
 * rewritten on every change, read by `cmd-nsc list connections`) → wait for the abort signal → close every
 * connection and remove the state file. With NSM_SERVICE_BACKENDS the pod is also a service backend: its first
 * connection's source address is registered and probed (`backends.ts`), and the rows are deleted on exit. When a connection carries DNS configs, the local DNS forwarder serves
 * them and the resolver config points at it until exit (`dns.ts`).
 */
import { once } from "node:events";
import { MechanismType } from "@nsm-ts/api/constants";
import type { Mechanism } from "@nsm-ts/api/networkservice";
import type { NetworkServiceRequestUrl, RunContext } from "@nsm-ts/base/config";
import { dial } from "@nsm-ts/base/grpc";
import type { Logger } from "@nsm-ts/base/log";
import { startObservability } from "@nsm-ts/base/metrics";
import { programIdentity } from "@nsm-ts/base/program";
import { client, clientinfo, type heal, mechanisms, type NetworkServiceElement } from "@nsm-ts/sdk/networkservice";
import { netnsInodeUrl } from "@nsm-ts/sdk-linux";
import { servicesClient } from "@nsm-ts/services";
import { type BackendRole, leaseSecondsOf, startBackendRole } from "./backends.js";
import type { Config } from "./config.js";
import { startClientDns } from "./dns.js";
import { type ClientState, removeState, writeState } from "./state.js";
import { type ConnectionSummary, summarize } from "./summary.js";

/** The mechanism to offer for one NSM_NETWORK_SERVICES entry (the config table admits KERNEL and NOOP only). */
function mechanismOf(u: NetworkServiceRequestUrl): Mechanism {
  if (u.mechanism === MechanismType.NOOP) return mechanisms.noop.mechanism();
  // Named by inode, which the forwarder resolves through /proc whatever PID namespace we run in (a pod's pid
  // would name another process there); thread-self would need fd passing.
  return mechanisms.kernel.mechanism({ netnsUrl: netnsInodeUrl(), ...(u.ifName ? { ifName: u.ifName } : {}) });
}

/**
 * Logs every Request after the first one of a connection that reaches this point of the chain: those are the
 * refreshes and heals the chain makes on its own, which the program never sees otherwise.
 */
function refreshLog(log: Logger, established: ReadonlySet<string>, onRefreshed: (c: ConnectionSummary) => void): NetworkServiceElement {
  return {
    name: "nsc-log",
    async request(ctx, req, next) {
      const conn = await next.request(ctx, req);
      if (established.has(conn.id)) {
        const connection = summarize(conn);
        log.info({ connId: conn.id, connection }, "connection refreshed");
        onRefreshed(connection);
      }
      return conn;
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}

/** Runs cmd-nsc until `ctx.signal` aborts, then closes its connections. */
export async function run(cfg: Config, ctx: RunContext): Promise<void> {
  const log = ctx.log;
  const id = await programIdentity("cmd-nsc", cfg, log, { signal: ctx.signal });
  const obs = await startObservability(cfg, { program: "cmd-nsc", log });
  // Nothing runs and nothing is written before a connection brings a DNS config.
  const dns = await startClientDns(cfg, log, obs.metrics?.registry);
  const established = new Set<string>();
  // The connections as last returned (first Request, refresh, heal), for the state file.
  const summaries = new Map<string, ConnectionSummary>();
  let published = true;
  const publish = (): void => {
    if (!published) return;
    const state: ClientState = {
      name: cfg.name,
      pid: process.pid,
      updatedAt: new Date().toISOString(),
      connections: nsc.status().flatMap((h) => {
        const connection = summaries.get(h.connId);
        return connection ? [{ connection, heal: h }] : [];
      }),
    };
    try {
      writeState(cfg.stateDir, state);
    } catch (err) {
      // The state file is for operators; the connections must not suffer when it cannot be written.
      log.warn({ err, stateDir: cfg.stateDir }, "cannot write the state file; `cmd-nsc list connections` will not show this client");
      published = false;
    }
  };
  // The backend role follows the first connection: a heal that brings a new address rewrites the backends.
  let backendConnId: string | undefined;
  const channel = cfg.serviceBackends.length > 0 && cfg.servicesUrl ? dial(cfg.servicesUrl, id.dialOptions) : undefined;
  const backends: BackendRole | undefined = channel
    ? startBackendRole({
        api: servicesClient(channel).backends,
        backends: cfg.serviceBackends,
        name: cfg.name,
        ...(cfg.nodeName ? { node: cfg.nodeName } : {}),
        zone: cfg.zone,
        intervalMs: cfg.probeInterval,
        timeoutMs: cfg.probeTimeout,
        failures: cfg.probeFailures,
        leaseSeconds: leaseSecondsOf(cfg.serviceLease, cfg.probeInterval, cfg.probeTimeout),
        log,
      })
    : undefined;
  const onRefreshed = (c: ConnectionSummary): void => {
    summaries.set(c.id, c);
    publish();
    const src = c.srcIpAddrs[0];
    if (backends && src && (backendConnId ?? c.id) === c.id) {
      backendConnId = c.id;
      backends.setAddress(src.replace(/\/\d+$/, ""));
    }
  };
  const healOpts = {
    onStatus: publish,
    ...(obs.metrics ? { onEvent: (result: heal.HealEvent) => obs.metrics?.heals.inc({ result }) } : {}),
  };
  const nsc = client({
    name: cfg.name,
    connectTo: cfg.connectTo,
    tokenGenerator: id.tokenGenerator,
    insecure: id.insecure,
    ...(id.dialOptions.tls ? { tls: id.dialOptions.tls } : {}),
    requestTimeoutMs: cfg.requestTimeout,
    interceptors: obs.clientInterceptors,
    ...(obs.tracing ? { tracer: obs.tracing.tracer } : {}),
    heal: healOpts,
    additional: [refreshLog(log, established, onRefreshed), ...(dns ? [dns.element] : [])],
    log,
  });
  const info: clientinfo.ClientInfoOptions = {
    ...(cfg.nodeName ? { nodeName: cfg.nodeName } : {}),
    ...(cfg.podName ? { podName: cfg.podName } : {}),
    ...(cfg.clusterName ? { clusterName: cfg.clusterName } : {}),
  };
  publish();
  try {
    for (const u of cfg.networkServices) {
      const labels: Record<string, string> = { ...cfg.labels, ...u.labels };
      clientinfo.addClientInfo(labels, info);
      log.info({ networkService: u.networkService, mechanism: u.mechanism, labels, nsmgr: cfg.connectTo }, "requesting");
      const conn = await nsc.request(
        { connection: { networkService: u.networkService, labels }, mechanismPreferences: [mechanismOf(u)] },
        { signal: ctx.signal },
      );
      established.add(conn.id);
      const connection = summarize(conn);
      log.info({ connId: conn.id, connection }, "connected");
      onRefreshed(connection);
    }
    if (backends && backendConnId === undefined) {
      log.warn(
        { services: cfg.serviceBackends.map((b) => b.service) },
        "NSM_SERVICE_BACKENDS: no connection has a source address; not a service backend until one brings it",
      );
    }
    if (!ctx.signal.aborted) await once(ctx.signal, "abort");
  } catch (err) {
    // A Request interrupted by SIGTERM is a normal shutdown, whatever status the cancelled call reported.
    if (!ctx.signal.aborted) throw err;
  } finally {
    // The backends go first: no new flow should reach this pod while its connections close.
    await backends?.close();
    channel?.close();
    // dispose closes every open connection along its path (best effort) and ends refresh and heal.
    await nsc.dispose();
    published = false;
    removeState(cfg.stateDir, cfg.name);
    for (const connId of established) log.info({ connId }, "connection closed");
    await dns?.close();
    await obs.close();
  }
}
