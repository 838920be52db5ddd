/**
 * Runs one delivery worker per cluster target, in parallel across clusters: it follows the clusters (list,
 * then watch), starts the workers of new targets, restarts those of a cluster whose definition changed, and
 * stops those of removed clusters. Every replica runs a supervisor; the workers' locks make one replica
 * deliver each target.
 */
import type { Cluster } from "@nsm-ts/api/intents";
import type { Kv } from "../kv/index.js";
import { decode, schemas, targetsOf } from "../model.js";
import { watchPrefix } from "../watch.js";
import type { TargetFactory } from "./target.js";
import { runWorker, type WorkerOptions } from "./worker.js";

interface Running {
  readonly revision: string;
  readonly ac: AbortController;
  readonly done: Promise<void>;
}

/**
 * Delivers until `signal` aborts; resolves once every worker has stopped. A broken cluster watch (etcd
 * unreachable) stops the workers and starts over after `lockRetryMs`, so delivery outlives store outages.
 */
export async function runDelivery(kv: Kv, factory: TargetFactory, opts: WorkerOptions, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    try {
      await superviseOnce(kv, factory, opts, signal);
    } catch (err) {
      if (signal.aborted) return;
      opts.log.warn({ err }, "traffic-controller: following the clusters failed; starting over");
      await opts.clock.sleep(opts.lockRetryMs ?? 2_000, signal).catch(() => undefined);
    }
  }
}

async function superviseOnce(kv: Kv, factory: TargetFactory, opts: WorkerOptions, signal: AbortSignal): Promise<void> {
  const running = new Map<string, Running>();
  const stop = async (key: string) => {
    const r = running.get(key);
    if (r === undefined) return;
    running.delete(key);
    r.ac.abort();
    await r.done;
  };
  const start = (c: Cluster, target: string) => {
    const ac = new AbortController();
    const t = factory(c, target);
    const done = runWorker(kv, c.name, target, t, opts, AbortSignal.any([signal, ac.signal]))
      .catch((err: unknown) => opts.log.error({ err, cluster: c.name, target }, "traffic-controller: worker stopped"))
      .finally(() => t.close?.().catch(() => undefined));
    running.set(`${c.name}/${target}`, { revision: c.revision, ac, done });
  };
  try {
    for await (const ev of watchPrefix(kv, "st/cluster/", false, signal)) {
      const name = ev.entry.key.slice("st/cluster/".length);
      const c = ev.type === "put" ? decode(schemas.cluster, ev.entry.value, ev.entry.modRevision) : undefined;
      const want = new Set(c === undefined ? [] : targetsOf(c));
      for (const key of [...running.keys()]) {
        const [cl, target = ""] = key.split("/");
        if (cl !== name) continue;
        if (!want.has(target) || running.get(key)?.revision !== c?.revision) await stop(key);
      }
      if (c !== undefined) for (const target of want) if (!running.has(`${name}/${target}`)) start(c, target);
    }
  } finally {
    await Promise.all([...running.keys()].map(stop));
  }
}
