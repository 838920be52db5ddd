/**
 * The edge of an interdomain sandbox: the registry proxy (resolving other domains through the test's DNS) and the
 * nsmgr-proxy (the domain's door, serving the registry its `NSM_PROXY_REGISTRY_URL`), each restartable on its URL,
 * and their DNS records.
 */
import type { NsmServer } from "@nsm-ts/base/grpc";
import { createNsmgrProxy, type NsmgrProxy } from "@nsm-ts/sdk/networkservice";
import { createRegistryProxyDns, dnsresolve, type RegistryProxyDns, serveRegistry } from "@nsm-ts/sdk/registry";
import { killServer, type SandboxEnv } from "./env.js";
import type { SandboxDomainOptions } from "./options.js";
import type { SandboxDomainParts, SandboxPart } from "./types.js";

/** URLs of the parts, chosen before the registry starts (it dials the nsmgr-proxy). */
export interface DomainUrls {
  readonly nsmgrProxy: string;
  readonly registryProxy: string;
}

/** Picks the URLs of the edge parts. */
export async function domainUrls(env: SandboxEnv): Promise<DomainUrls> {
  return { nsmgrProxy: await env.urlFor("nsmgr-proxy"), registryProxy: await env.urlFor("registry-proxy-dns") };
}

/** Publishes the registry (and the nsmgr-proxy) of `d` in its DNS. */
export function publish(d: SandboxDomainOptions, registryUrl: string, urls: DomainUrls | undefined): void {
  d.dns.set(`${dnsresolve.DEFAULT_REGISTRY_SERVICE}.${d.name}`, registryUrl);
  if (urls) d.dns.set(`${dnsresolve.DEFAULT_NSMGR_PROXY_SERVICE}.${d.name}`, urls.nsmgrProxy);
}

/** Starts the registry proxy and the nsmgr-proxy of domain `d`; the sandbox's `close()` kills them. */
export async function createDomainParts(
  env: SandboxEnv,
  d: SandboxDomainOptions,
  urls: DomainUrls,
  registryUrl: string,
): Promise<SandboxDomainParts> {
  const resolver = dnsresolve.createDnsResolver([d.dns.at], { queryTimeoutMs: 1000 });
  const rpName = `registry-proxy-dns.${d.name}`;
  let rp: RegistryProxyDns | undefined;
  let rpServer: NsmServer | undefined;
  const registryProxy = restartable(urls.registryProxy, {
    start: async () => {
      rp = createRegistryProxyDns({ tokenGenerator: env.tokenGenerator(rpName), resolver });
      const s = env.serverOf(rpName);
      serveRegistry(s, rp, env.serveOpts);
      await s.listen(urls.registryProxy);
      rpServer = s;
    },
    kill: async () => {
      const s = rpServer;
      rpServer = undefined;
      await killServer(s);
      rp?.close();
    },
    alive: () => rpServer !== undefined,
  });
  const npName = `nsmgr-proxy.${d.name}`;
  let np: NsmgrProxy | undefined;
  let npServer: NsmServer | undefined;
  const nsmgrProxy = restartable(urls.nsmgrProxy, {
    start: async () => {
      np = createNsmgrProxy({
        name: npName,
        url: urls.nsmgrProxy,
        registryUrl,
        registryProxyUrl: urls.registryProxy,
        tokenGenerator: env.tokenGenerator(npName),
        insecure: true,
        clock: env.clock,
        log: env.log,
        dialOptions: { interceptors: env.clientInterceptors(npName) },
        ...(d.ipMap === undefined ? {} : { ipMap: d.ipMap }),
      });
      const s = env.serverOf(npName);
      np.serve(s, env.serveOpts);
      await s.listen(urls.nsmgrProxy);
      npServer = s;
    },
    kill: async () => {
      const s = npServer;
      npServer = undefined;
      await killServer(s);
      np?.close();
    },
    alive: () => npServer !== undefined,
  });
  await registryProxy.restart();
  await nsmgrProxy.restart();
  env.cleanups.add(() => registryProxy.kill());
  env.cleanups.add(() => nsmgrProxy.kill());
  return {
    registryProxy,
    nsmgrProxy: Object.defineProperties(nsmgrProxy, {
      name: { value: npName },
      instance: { get: () => np as NsmgrProxy },
    }) as SandboxPart & { readonly name: string; readonly instance: NsmgrProxy },
  };
}

function restartable(url: string, p: { start(): Promise<void>; kill(): Promise<void>; alive(): boolean }): SandboxPart {
  return {
    url,
    get alive() {
      return p.alive();
    },
    kill: () => p.kill(),
    async restart() {
      await p.kill();
      await p.start();
    },
  };
}
