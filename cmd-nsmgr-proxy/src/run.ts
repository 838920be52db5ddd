/**
 * cmd-nsmgr-proxy's wiring: identity → listen on every NSM_LISTEN_ON URL → the nsmgr-proxy chain (NetworkService,
 * MonitorConnection, the registry its domain's registry forwards interdomain names to) → health SERVING → wait
 * for the abort signal → stop.
 */
import { once } from "node:events";
import { networkInterfaces } from "node:os";
import { type RunContext, serverLimits } from "@nsm-ts/base/config";
import { createServer, parseUrl } from "@nsm-ts/base/grpc";
import { startObservability } from "@nsm-ts/base/metrics";
import { spiffeIdMatcher } from "@nsm-ts/base/policy";
import { programIdentity } from "@nsm-ts/base/program";
import { createNsmgrProxy, type NsmgrProxy } from "@nsm-ts/sdk/networkservice";
import type { Config } from "./config.js";
import { type IpMapFile, watchIpMap } from "./ipmap.js";

function hostAddress(): string {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  return "127.0.0.1";
}

/** The URL to publish: `NSM_PUBLISHED_URL`, else the first tcp URL bound (a wildcard host made concrete). */
export function publishedUrl(bound: readonly string[], configured?: string): string {
  if (configured !== undefined) return configured;
  for (const u of bound) {
    const p = parseUrl(u);
    if (p.scheme !== "tcp") continue;
    const host = p.host === undefined || p.host === "" || p.host === "0.0.0.0" || p.host === "::" ? hostAddress() : p.host;
    return `tcp://${host.includes(":") ? `[${host}]` : host}:${p.port}`;
  }
  throw new Error("NSM_LISTEN_ON lists no tcp URL and NSM_PUBLISHED_URL is unset: other domains could not reach this proxy");
}

/** Runs cmd-nsmgr-proxy until `ctx.signal` aborts. */
export async function run(cfg: Config, ctx: RunContext): Promise<void> {
  const log = ctx.log;
  const id = await programIdentity("cmd-nsmgr-proxy", cfg, log, { signal: ctx.signal });
  const obs = await startObservability(cfg, { program: "cmd-nsmgr-proxy", log });
  const server = createServer({
    ...id.serverOptions,
    ...serverLimits(cfg),
    log,
    interceptors: obs.serverInterceptors,
  });
  server.health.set("", "NOT_SERVING");
  let proxy: NsmgrProxy | undefined;
  let ipMap: IpMapFile | undefined;
  try {
    const bound: string[] = [];
    for (const u of cfg.listenOn) bound.push(await server.listen(u));
    const url = publishedUrl(bound, cfg.publishedUrl);
    const map = watchIpMap(cfg.mapIpFilePath, log);
    ipMap = map;
    proxy = createNsmgrProxy({
      name: cfg.name,
      url,
      registryUrl: cfg.registryUrl,
      registryProxyUrl: cfg.registryProxyUrl,
      tokenGenerator: id.tokenGenerator,
      insecure: id.insecure,
      ...(cfg.trustedHops === undefined ? {} : { trustedHops: spiffeIdMatcher(cfg.trustedHops) }),
      dialOptions: { ...id.dialOptions, interceptors: obs.clientInterceptors },
      requestTimeoutMs: cfg.requestTimeout,
      ipMap: () => map.current(),
      log,
    });
    proxy.serve(server, { log });
    const held = proxy.monitor;
    obs.metrics?.countConnections(() => held.size);
    server.health.set("", "SERVING");
    log.info(
      { urls: bound, publishedUrl: url, registry: cfg.registryUrl, registryProxy: cfg.registryProxyUrl, spiffeId: id.identity.spiffeId },
      "cmd-nsmgr-proxy serving",
    );
    if (!ctx.signal.aborted) await once(ctx.signal, "abort");
    log.info("cmd-nsmgr-proxy shutting down");
  } finally {
    await server.close();
    proxy?.close();
    ipMap?.close();
    await obs.close();
  }
}
