/**
 * cmd-nsmgr's wiring: identity → listen on every NSM_LISTEN_ON URL (the node socket for local clients, a tcp
 * URL for other nodes) → the nsmgr chain (NetworkService, MonitorConnection, the registry proxy for the node's
 * endpoints and forwarders) → health SERVING → wait for the abort signal → drain and stop.
 */
import { once } from "node:events";
import { mkdirSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { dirname } from "node:path";
import { type RunContext, serverLimits } from "@nsm-ts/base/config";
import { createServer, parseUrl } from "@nsm-ts/base/grpc";
import { startObservability } from "@nsm-ts/base/metrics";
import { spiffeIdMatcher } from "@nsm-ts/base/policy";
import { programIdentity } from "@nsm-ts/base/program";
import { createNsmgr } from "@nsm-ts/sdk/networkservice";
import type { Config } from "./config.js";

/** A non-loopback IPv4 address of this machine, for publishing a tcp URL bound to all interfaces. */
function hostAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}

/**
 * The URL other nodes reach us at: the first tcp URL we bound (a wildcard host replaced by this machine's
 * address), else the first URL (a single-node mesh on unix sockets).
 */
export function publishedUrl(bound: readonly string[]): string {
  for (const u of bound) {
    const p = parseUrl(u);
    if (p.scheme !== "tcp") continue;
    const host = p.host === undefined || p.host === "" || p.host === "0.0.0.0" || p.host === "::" ? hostAddress() : p.host;
    return `tcp://${host.includes(":") ? `[${host}]` : host}:${p.port}`;
  }
  const first = bound[0];
  if (first === undefined) throw new Error("cmd-nsmgr: NSM_LISTEN_ON lists no URL");
  return first;
}

/** Runs cmd-nsmgr until `ctx.signal` aborts, then stops serving. */
export async function run(cfg: Config, ctx: RunContext): Promise<void> {
  const log = ctx.log;
  const id = await programIdentity("cmd-nsmgr", cfg, log, { signal: ctx.signal });
  const obs = await startObservability(cfg, { program: "cmd-nsmgr", log });
  const server = createServer({
    ...id.serverOptions,
    ...serverLimits(cfg),
    log,
    interceptors: obs.serverInterceptors,
  });
  server.health.set("", "NOT_SERVING");
  let nsmgr: ReturnType<typeof createNsmgr> | undefined;
  try {
    const bound: string[] = [];
    for (const url of cfg.listenOn) {
      const p = parseUrl(url);
      if (p.path) mkdirSync(dirname(p.path), { recursive: true });
      bound.push(await server.listen(url));
    }
    const url = publishedUrl(bound);
    nsmgr = createNsmgr({
      name: cfg.name,
      url,
      registryUrl: cfg.registryUrl,
      tokenGenerator: id.tokenGenerator,
      insecure: id.insecure,
      ...(cfg.trustedHops === undefined ? {} : { trustedHops: spiffeIdMatcher(cfg.trustedHops) }),
      dialOptions: { ...id.dialOptions, interceptors: obs.clientInterceptors },
      requestTimeoutMs: cfg.requestTimeout,
      forwarderServiceName: cfg.forwarderNetworkServiceName,
      clientInfo: {
        nodeName: cfg.nodeName,
        ...(cfg.podName ? { podName: cfg.podName } : {}),
        ...(cfg.clusterName ? { clusterName: cfg.clusterName } : {}),
      },
    });
    nsmgr.serve(server, { log });
    const held = nsmgr.monitor;
    obs.metrics?.countConnections(() => held.size);
    server.health.set("", "SERVING");
    log.info(
      { urls: bound, publishedUrl: url, registry: cfg.registryUrl, nodeName: cfg.nodeName, spiffeId: id.identity.spiffeId },
      "cmd-nsmgr serving",
    );
    if (!ctx.signal.aborted) await once(ctx.signal, "abort");
    log.info("cmd-nsmgr shutting down");
  } finally {
    await server.close();
    nsmgr?.close();
    await obs.close();
  }
}
