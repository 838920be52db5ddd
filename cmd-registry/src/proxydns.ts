/**
 * cmd-registry in `NSM_REGISTRY_MODE=proxy-dns`: upstream's registry-proxy-dns as a mode of this program. It stores
 * nothing; both registry services send each interdomain name to the registry that DNS names for its domain
 * (`createRegistryProxyDns`). Health SERVING once listening; metrics as in the registry mode.
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { type RunContext, serverLimits } from "@nsm-ts/base/config";
import { createServer } from "@nsm-ts/base/grpc";
import { startObservability } from "@nsm-ts/base/metrics";
import { programIdentity } from "@nsm-ts/base/program";
import { parseResolvConf } from "@nsm-ts/sdk/dns";
import { createRegistryProxyDns, dnsresolve, serveRegistry } from "@nsm-ts/sdk/registry";
import type { Config } from "./config.js";

/** The DNS servers: `NSM_DNS_SERVERS`, else the nameservers of /etc/resolv.conf. */
export function dnsServersOf(cfg: Pick<Config, "dnsServers">, resolvConf = "/etc/resolv.conf"): string[] {
  if (cfg.dnsServers !== undefined) return cfg.dnsServers;
  let text = "";
  try {
    text = readFileSync(resolvConf, "utf8");
  } catch {
    // No resolver configuration: reported below as a configuration error.
  }
  const servers = [...parseResolvConf(text).nameservers];
  if (servers.length === 0) throw new Error(`NSM_DNS_SERVERS is unset and ${resolvConf} names no nameserver`);
  return servers;
}

/** Runs the registry proxy until `ctx.signal` aborts. */
export async function runProxyDns(cfg: Config, ctx: RunContext): Promise<void> {
  const { identity, tokenGenerator, serverOptions, dialOptions } = await programIdentity("cmd-registry", cfg, ctx.log, {
    signal: ctx.signal,
  });
  const servers = dnsServersOf(cfg);
  const resolver = dnsresolve.createDnsResolver(servers, { queryTimeoutMs: cfg.dnsQueryTimeout });
  const obs = await startObservability(cfg, { program: "cmd-registry", log: ctx.log });
  const proxy = createRegistryProxyDns({
    tokenGenerator,
    resolver,
    dialOptions: { ...dialOptions, interceptors: obs.clientInterceptors },
  });
  const server = createServer({
    ...serverOptions,
    ...serverLimits(cfg),
    log: ctx.log,
    interceptors: obs.serverInterceptors,
  });
  try {
    serveRegistry(server, proxy, { log: ctx.log });
    const urls: string[] = [];
    for (const url of cfg.listenOn) urls.push(await server.listen(url));
    ctx.log.info({ urls, mode: "proxy-dns", dnsServers: servers, spiffeId: identity.spiffeId }, "cmd-registry serving");
    if (!ctx.signal.aborted) await once(ctx.signal, "abort");
    ctx.log.info("cmd-registry shutting down");
  } finally {
    await server.close();
    proxy.close();
    await obs.close();
  }
}
