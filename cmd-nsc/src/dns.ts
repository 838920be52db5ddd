/**
 * cmd-nsc's DNS: the `dnscontext` client element keeps the DNS configs of all connections in one store; on the
 * first config the forwarder starts on NSM_LOCAL_DNS_SERVER_ADDRESS (a loopback address of this netns) and the
 * resolver config (NSM_RESOLV_CONF_PATH) is pointed at it, the original's nameservers becoming the fallback;
 * later changes rewrite the search list. On exit the forwarder stops and the original file comes back. A
 * failure here is logged and leaves the connections alone: DNS is an addition to them.
 */
import { readFile } from "node:fs/promises";
import type { Logger } from "@nsm-ts/base/log";
import type { Metrics } from "@nsm-ts/base/metrics";
import {
  createDnsServer,
  type DnsServer,
  type DnsServerAddress,
  dnsChain,
  newNoLoopHandler,
  newRouteHandler,
  parseResolvConf,
  parseServerAddress,
} from "@nsm-ts/sdk/dns";
import { dnscontext, type NetworkServiceElement } from "@nsm-ts/sdk/networkservice";
import { isMountPoint, ResolvConfOwner } from "@nsm-ts/sdk-linux";

/** What `startClientDns` needs of the configuration. */
export interface ClientDnsConfig {
  localDnsServerEnabled: boolean;
  localDnsServerAddress: string;
  resolvConfPath: string;
  dnsQueryTimeout: number;
}

/** The client's DNS: its chain element and its shutdown. */
export interface ClientDns {
  /** The dnscontext client element for the client chain's `additional`. */
  readonly element: NetworkServiceElement;
  /** The merged configs (tests, the state file). */
  readonly store: dnscontext.DnsConfigStore;
  /** Resolves once the forwarder serves and the resolver config points at it (for tests and logs). */
  readonly ready: Promise<void>;
  /** Resolves when the changes so far are applied (tests). */
  settled(): Promise<void>;
  /** The forwarder's bound address, once it serves. */
  address(): DnsServerAddress | undefined;
  /** Stops the forwarder and restores the resolver config. */
  close(): Promise<void>;
}

/** Sets up the client's DNS (nothing is started or written before a connection brings a DNS config). */
export async function startClientDns(cfg: ClientDnsConfig, log: Logger, registry?: Metrics["registry"]): Promise<ClientDns | undefined> {
  if (!cfg.localDnsServerEnabled) return undefined;
  const listen = parseServerAddress(cfg.localDnsServerAddress, 53, true) ?? { host: "127.0.0.1", port: 53 };
  // The default path is only ours to rewrite when it is a mount of its own (a pod's, or `ip netns exec`'s from
  // /etc/netns/<ns>); otherwise it is the host's file, shared by every process on the machine.
  const mine = cfg.resolvConfPath !== "/etc/resolv.conf" || (await isMountPoint(cfg.resolvConfPath));
  let owner: ResolvConfOwner | undefined;
  let original: readonly string[] = [];
  try {
    if (mine) {
      owner = await ResolvConfOwner.open(cfg.resolvConfPath, log);
      original = owner.original.nameservers;
    } else {
      original = parseResolvConf(await readFile(cfg.resolvConfPath, "utf8")).nameservers;
    }
  } catch (err) {
    log.warn(
      { err, path: cfg.resolvConfPath },
      "dns: cannot read the resolver config; the forwarder will have no fallback and nothing will point at it",
    );
  }
  const fallback: DnsServerAddress[] = original.flatMap((ns) => parseServerAddress(ns) ?? []);
  const store = new dnscontext.DnsConfigStore();
  let server: DnsServer | undefined;
  let search = "";
  let closed = false;
  let warnedHost = false;
  let markReady: () => void = () => {};
  const ready = new Promise<void>((r) => {
    markReady = r;
  });
  // Changes are applied one at a time, in order; a failure is logged and the next change tries again.
  let work = Promise.resolve();
  const apply = async (): Promise<void> => {
    const configs = store.configs();
    if (closed || configs.length === 0) return;
    if (!server) {
      const s = createDnsServer(
        dnsChain(
          newNoLoopHandler(),
          newRouteHandler(() => store.configs(), { fallback: () => fallback, exclude: [listen] }),
        ),
        { log, queryTimeoutMs: cfg.dnsQueryTimeout, ...(registry ? { registry } : {}) },
      );
      await s.listen(cfg.localDnsServerAddress);
      server = s;
    }
    if (!mine && !warnedHost) {
      warnedHost = true;
      log.warn(
        { path: cfg.resolvConfPath },
        "dns: /etc/resolv.conf is not a mount of this container or netns (the host's?); the forwarder serves but the resolver config is left alone",
      );
    }
    const domains = [...new Set(configs.flatMap((c) => c.searchDomains))];
    if (owner && domains.join(" ") !== search) {
      await owner.pointAt(listen.host, domains);
      search = domains.join(" ");
    }
    log.info(
      { address: cfg.localDnsServerAddress, configs, resolvConf: owner?.path },
      "dns: forwarder serving the connections' DNS configs",
    );
    markReady();
  };
  const unsubscribe = store.onChange(() => {
    work = work
      .then(apply)
      .catch((err: unknown) =>
        log.warn({ err }, "dns: cannot start the forwarder or rewrite the resolver config; the connections are unaffected"),
      );
  });
  return {
    element: dnscontext.newClient(store),
    store,
    ready,
    settled: () => work,
    address: () => server?.address,
    async close() {
      closed = true;
      unsubscribe();
      await work;
      await server?.close();
      try {
        await owner?.restore();
      } catch (err) {
        log.warn({ err, path: owner?.path }, "dns: cannot restore the resolver config");
      }
    },
  };
}
