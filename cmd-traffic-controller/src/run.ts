/**
 * cmd-traffic-controller's wiring: identity, the intent store (memory or etcd), the API on gRPC (health
 * SERVING) and Connect HTTP, the delivery workers (one per cluster target; on etcd one replica delivers each),
 * metrics (outbox depth, delivery attempts) and a graceful shutdown when `ctx.signal` aborts.
 */
import { once } from "node:events";
import { createServer as createHttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Cluster } from "@nsm-ts/api/intents";
import { realClock } from "@nsm-ts/base/clock";
import { type RunContext, serverLimits } from "@nsm-ts/base/config";
import { createServer, parseUrl } from "@nsm-ts/base/grpc";
import { startObservability } from "@nsm-ts/base/metrics";
import { programIdentity } from "@nsm-ts/base/program";
import type { TokenGenerator } from "@nsm-ts/base/token";
import type { Config } from "./config.js";
import { createGitTarget } from "./delivery/git.js";
import { createKubernetesTarget } from "./delivery/kubernetes.js";
import { createRegistryTarget } from "./delivery/registry.js";
import { runDelivery } from "./delivery/supervisor.js";
import type { DeliveryTarget } from "./delivery/target.js";
import { createEtcdKv, createMemoryKv, type Kv } from "./kv/index.js";
import { IntentObjects } from "./objects.js";
import { createConnectHandler, registerIntentServices } from "./serve.js";
import { IntentStore } from "./store.js";

/** The real targets of a cluster. */
export function realTargets(gitWorkDir: string, tokenGenerator: TokenGenerator, log: RunContext["log"]) {
  return (c: Cluster, target: string): DeliveryTarget => {
    const t = c.target;
    if (target === "git") return createGitTarget({ url: t?.gitUrl ?? "", branch: t?.gitBranch ?? "", workDir: join(gitWorkDir, c.name) });
    if (target === "registry") return createRegistryTarget({ url: t?.registryUrl ?? "", tokenGenerator, log });
    return createKubernetesTarget({ url: t?.kubernetesUrl ?? "", ...(t?.kubeconfigFile ? { kubeconfigFile: t.kubeconfigFile } : {}) });
  };
}

/** Runs cmd-traffic-controller until `ctx.signal` aborts. */
export async function run(cfg: Config, ctx: RunContext): Promise<void> {
  const { tokenGenerator, serverOptions } = await programIdentity("cmd-traffic-controller", cfg, ctx.log, { signal: ctx.signal });
  const kv: Kv =
    cfg.store.kind === "etcd" ? createEtcdKv({ endpoints: cfg.store.endpoints, prefix: cfg.etcdPrefix, log: ctx.log }) : createMemoryKv();
  const objects = new IntentObjects(new IntentStore(kv, { log: ctx.log }));
  const obs = await startObservability(cfg, { program: "cmd-traffic-controller", log: ctx.log });
  const attempts = new Map<string, number>();
  obs.metrics?.gauge(
    "nsmts_traffic_outbox_entries",
    "Outbox entries not yet delivered, by cluster and target",
    async () => {
      const counts = new Map<string, number>();
      for (const e of (await kv.list("ob/")).entries) {
        const [, cluster = "", target = ""] = e.key.split("/");
        counts.set(`${cluster}/${target}`, (counts.get(`${cluster}/${target}`) ?? 0) + 1);
      }
      return [...counts].map(([k, n]) => {
        const [cluster = "", target = ""] = k.split("/");
        return [{ cluster, target }, n];
      });
    },
    ["cluster", "target"],
  );
  obs.metrics?.gauge(
    "nsmts_traffic_delivery_attempts",
    "Delivery attempts by this process since it started, by cluster, target and result",
    () =>
      [...attempts].map(([k, n]) => {
        const [cluster = "", target = "", result = ""] = k.split("/");
        return [{ cluster, target, result }, n];
      }),
    ["cluster", "target", "result"],
  );
  const server = createServer({
    ...serverOptions,
    ...serverLimits(cfg),
    log: ctx.log,
    interceptors: obs.serverInterceptors,
  });
  const http = createHttpServer(createConnectHandler(objects, { log: ctx.log }));
  const stopDelivery = new AbortController();
  let delivering: Promise<void> = Promise.resolve();
  try {
    registerIntentServices(server, objects);
    const urls: string[] = [];
    for (const u of cfg.listenOn) urls.push(await server.listen(u));
    let httpUrl: string | undefined;
    if (cfg.httpListenOn !== undefined) {
      const p = parseUrl(cfg.httpListenOn);
      http.listen(p.port ?? 5080, p.host === "" ? undefined : p.host);
      await once(http, "listening");
      httpUrl = `http://${p.host || "0.0.0.0"}:${(http.address() as AddressInfo).port}`;
    }
    delivering = runDelivery(
      kv,
      realTargets(cfg.gitWorkDir, tokenGenerator, ctx.log),
      {
        clock: realClock,
        log: ctx.log,
        backoffInitialMs: cfg.backoffInitial,
        backoffMaxMs: cfg.backoffMax,
        lockTtlMs: cfg.lockTtl,
        onAttempt: (cluster, target, ok) => {
          const k = `${cluster}/${target}/${ok ? "ok" : "failed"}`;
          attempts.set(k, (attempts.get(k) ?? 0) + 1);
        },
      },
      AbortSignal.any([ctx.signal, stopDelivery.signal]),
    ).catch((err: unknown) => ctx.log.error({ err }, "cmd-traffic-controller: delivery stopped"));
    ctx.log.info({ urls, httpUrl, store: cfg.store }, "cmd-traffic-controller serving");
    if (!ctx.signal.aborted) await once(ctx.signal, "abort");
    ctx.log.info("cmd-traffic-controller shutting down");
  } finally {
    stopDelivery.abort();
    await delivering;
    http.closeAllConnections();
    await new Promise((r) => http.close(r));
    await server.close();
    await Promise.allSettled([kv.close(), obs.close()]);
  }
}
