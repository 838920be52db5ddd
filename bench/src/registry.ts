/**
 * Registry store benchmark: register throughput and Find-by-label latency with 100,000 registered endpoints, for
 * the in-memory store and for etcd (a private etcd started by tools/etcdtest). Each store is also measured against
 * a baseline from the same run: indexed Find against a Find the indexes cannot narrow (a full scan), and etcd against
 * memory; etcd registration with leases shared per expiry bucket against a lease per registration, and a restart
 * (a new store loading every entry at start) and the sliced scan it reads with against the bare paged range.
 * Run: `npx tsc -b bench && node bench/dist/registry.js [count]`.
 */
import { existsSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type NetworkServiceEndpoint, NetworkServiceEndpointSchema, NetworkServiceLabelsSchema } from "@nsm-ts/api/registry";
import { EtcdStoreBase, newEtcdClient, scanPrefix } from "@nsm-ts/base/etcd";
import { createEtcdStore, createMemoryStore, type RegistryStore } from "@nsm-ts/sdk/registry";
import { etcdAvailable, seedEtcd, startEtcd } from "@nsm-ts/testing/etcd";

const SERVICES = 100;
const APPS = 1000;

/** This process's CPU time (user + system), ms. */
export const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Bare paged range of every key under `/bench/nse/`, pages of 1000, no decoding: wall and CPU ms. */
export async function bareRange(endpoints: string[]): Promise<{ ms: number; cpu: number; keys: number }> {
  const client = newEtcdClient({ hosts: endpoints });
  const start = performance.now();
  const cpu0 = cpuMs();
  let keys = 0;
  try {
    for (let key = Buffer.from("/bench/nse/"); ; ) {
      const res = await client.kv.range({ key, range_end: Buffer.from("/bench/nse0"), limit: 1000 });
      keys += res.kvs.length;
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || last === undefined) break;
      key = Buffer.concat([last.key, Buffer.from([0])]);
    }
  } finally {
    client.close();
  }
  return { ms: performance.now() - start, cpu: cpuMs() - cpu0, keys };
}

/** One measured row of the registry benchmark. */
export interface RegistryBenchRow {
  store: string;
  metric: string;
  value: string;
}

export function endpoint(i: number): NetworkServiceEndpoint {
  const svc = `svc-${i % SERVICES}`;
  return create(NetworkServiceEndpointSchema, {
    name: `nse-${i}`,
    networkServiceNames: [svc],
    networkServiceLabels: {
      [svc]: create(NetworkServiceLabelsSchema, { labels: { app: `app-${i % APPS}`, zone: `zone-${i % 10}` } }),
    },
    url: `tcp://198.51.100.${i % 250}:${5000 + (i % 1000)}`,
    expirationTime: timestampFromMs(Date.now() + 600_000),
  });
}

/** Template matching ~count/APPS endpoints through the label index. */
export function byLabel(q: number): NetworkServiceEndpoint {
  const app = q % APPS;
  const svc = `svc-${app % SERVICES}`;
  return create(NetworkServiceEndpointSchema, {
    networkServiceLabels: { [svc]: create(NetworkServiceLabelsSchema, { labels: { app: `app-${app}` } }) },
  });
}

/** Same result set, but through the URL substring rule, which no index serves: every entry is looked at. */
function byUrlScan(q: number): NetworkServiceEndpoint {
  return create(NetworkServiceEndpointSchema, { url: `:${5000 + (q % APPS)}` });
}

async function registerAll(store: RegistryStore<NetworkServiceEndpoint>, count: number, concurrency: number): Promise<number> {
  const start = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      await store.put(endpoint(i), { expiresAtMs: Date.now() + 600_000 });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return performance.now() - start;
}

/** Registers endpoints [from, to) through `store`, `concurrency` in flight; resolves to the elapsed ms. */
async function registerRange(store: RegistryStore<NetworkServiceEndpoint>, from: number, to: number, concurrency: number): Promise<number> {
  const start = performance.now();
  let next = from;
  const worker = async (): Promise<void> => {
    while (next < to) {
      const i = next++;
      await store.put(endpoint(i), { expiresAtMs: Date.now() + 600_000 });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return performance.now() - start;
}

async function findLatencies(
  store: RegistryStore<NetworkServiceEndpoint>,
  template: (q: number) => NetworkServiceEndpoint,
  queries: number,
  expectEach: number,
): Promise<number[]> {
  const out: number[] = [];
  const signal = new AbortController().signal;
  for (let q = 0; q < queries; q++) {
    const start = performance.now();
    let n = 0;
    for await (const _ of store.find(template(q), { watch: false, signal })) n++;
    out.push(performance.now() - start);
    if (n !== expectEach) throw new Error(`find ${q}: got ${n} entries, expected ${expectEach}`);
  }
  return out.sort((a, b) => a - b);
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

const ms = (v: number): string => `${v.toFixed(v < 1 ? 3 : 1)} ms`;

/** Runs the benchmark with `count` endpoints; etcd is skipped (with the reason as a row) when not installed. */
export async function runRegistryBench(count = 100_000): Promise<RegistryBenchRow[]> {
  const rows: RegistryBenchRow[] = [];
  const add = (store: string, metric: string, value: string): void => {
    rows.push({ store, metric, value });
    process.stdout.write(`${store.padEnd(8)} ${metric.padEnd(52)} ${value}\n`);
  };
  const perApp = count / APPS;

  // Memory.
  const mem = createMemoryStore("nse");
  const memMs = await registerAll(mem, count, 1);
  add("memory", `register ${count} NSEs (with expiry timers)`, `${Math.round((count / memMs) * 1000)} /s`);
  const memLabel = await findLatencies(mem, byLabel, 1000, perApp);
  add("memory", `find by label (${perApp} of ${count}) p50 / p99`, `${ms(pct(memLabel, 50))} / ${ms(pct(memLabel, 99))}`);
  const memScan = await findLatencies(mem, byUrlScan, 20, perApp);
  add("memory", `baseline: unindexed find (url substring) p50`, ms(pct(memScan, 50)));
  add("memory", "index speed-up (scan p50 / label p50)", `${(pct(memScan, 50) / pct(memLabel, 50)).toFixed(0)}x`);
  await mem.close();

  // etcd.
  const check = etcdAvailable();
  if (!check.available) {
    add("etcd", "skipped", check.reason);
    return rows;
  }
  // A tmpfs data dir takes the disk's fsync latency out: the numbers are etcd's and the store's, not the disk's.
  const tmpDir = existsSync("/dev/shm") ? "/dev/shm" : undefined;
  const etcd = await startEtcd({ heartbeatIntervalMs: 100, electionTimeoutMs: 1000, ...(tmpDir ? { tmpDir } : {}) });
  add("etcd", "data dir", tmpDir ?? "OS temp dir (disk)");
  try {
    // Registering 100k one by one (lease + txn each) takes minutes; seed most with batched transactions in the
    // store's key layout, then measure registration through the store on the rest.
    const viaStore = Math.min(count, 10_000);
    const seeded = count - viaStore;
    const seedStart = performance.now();
    await seedEtcd(
      etcd.endpoints,
      (function* () {
        for (let i = viaStore; i < count; i++) {
          yield [`/bench/nse/nse-${i}`, toBinary(NetworkServiceEndpointSchema, endpoint(i))] as const;
        }
      })(),
    );
    const seedMs = performance.now() - seedStart;
    if (seeded > 0) add("etcd", `seed ${seeded} NSEs (128 per txn, no lease)`, `${Math.round((seeded / seedMs) * 1000)} /s`);
    // Registration, interleaved in chunks so machine load hits both alike: leases shared per 5 s expiry bucket (the
    // default) against the baseline of one lease per registration (1 ms buckets: every expiry gets its own).
    const concurrency = 128;
    const shared = createEtcdStore("nse", { endpoints: etcd.endpoints, prefix: "/bench/" });
    const perEntry = createEtcdStore("nse", { endpoints: etcd.endpoints, prefix: "/bench/", leaseBucketMs: 1 });
    const chunk = Math.max(1, Math.min(1000, Math.floor(viaStore / 10)));
    const took = { shared: 0, perEntry: 0, sharedN: 0, perEntryN: 0 };
    try {
      for (let from = 0, j = 0; from < viaStore; from += chunk, j++) {
        const to = Math.min(viaStore, from + chunk);
        if (j % 2 === 0) {
          took.shared += await registerRange(shared, from, to, concurrency);
          took.sharedN += to - from;
        } else {
          took.perEntry += await registerRange(perEntry, from, to, concurrency);
          took.perEntryN += to - from;
        }
      }
    } finally {
      await shared.close();
      await perEntry.close();
    }
    const rate = (took.sharedN / took.shared) * 1000;
    add("etcd", `register ${took.sharedN} NSEs, shared leases (${concurrency} in flight)`, `${Math.round(rate)} /s (target >= 2000)`);
    if (took.perEntryN > 0) {
      const base = (took.perEntryN / took.perEntry) * 1000;
      add("etcd", `baseline: register ${took.perEntryN} NSEs, a lease each`, `${Math.round(base)} /s`);
      add("etcd", "shared leases / a lease each", `${(rate / base).toFixed(2)}x`);
    }
    add("etcd", "register throughput vs memory", `${(((count / memMs) * 1000) / rate).toFixed(0)}x slower`);
    // Baseline for the restart: the bare paged range over every key, no decoding.
    const { ms: rawMs, keys: rawKeys } = await bareRange(etcd.endpoints);
    add("etcd", `baseline: paged range of ${rawKeys} keys, no decoding`, ms(rawMs));
    // The read the load does (slices of the key space, a few in flight), also without decoding.
    const scanStart = performance.now();
    let scanKeys = 0;
    let scanRequests = 0;
    const scanBase = new EtcdStoreBase({ endpoints: etcd.endpoints, prefix: "/bench/nse/", describe: (op) => op, closedMessage: "closed" });
    try {
      for await (const page of scanPrefix(scanBase, "scan", "/bench/nse/", { pageSize: 1000 })) {
        scanKeys += page.kvs.length;
        scanRequests++;
      }
    } finally {
      await scanBase.close();
    }
    const scanMs = performance.now() - scanStart;
    add(
      "etcd",
      `sliced scan of ${scanKeys} keys (${scanRequests} requests), no decoding`,
      `${ms(scanMs)} (${(scanMs / rawMs).toFixed(2)}x the paged range)`,
    );
    // Restart: a new store loads at start; the first Find waits for the load. The event loop's longest stall
    // during the load shows whether decoding stays off the hot path (other calls keep being served).
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const loadStart = performance.now();
    const store = createEtcdStore("nse", { endpoints: etcd.endpoints, prefix: "/bench/", loadAtStart: true });
    try {
      await findLatencies(store, byLabel, 1, perApp);
      loop.disable();
      const firstMs = performance.now() - loadStart;
      add("etcd", `restart: first Find with ${count} entries (load at start)`, `${ms(firstMs)} (target <= 3000 ms)`);
      add("etcd", "restart: first Find / bare paged range", `${(firstMs / rawMs).toFixed(2)}x`);
      add("etcd", "restart: longest event-loop stall during the load", ms(loop.max / 1e6));
      const etcdLabel = await findLatencies(store, byLabel, 1000, perApp);
      add("etcd", `find by label (${perApp} of ${count}) p50 / p99 (mirror)`, `${ms(pct(etcdLabel, 50))} / ${ms(pct(etcdLabel, 99))}`);
      const etcdScan = await findLatencies(store, byUrlScan, 20, perApp);
      add("etcd", "baseline: unindexed find (url substring) p50", ms(pct(etcdScan, 50)));
      // A write through a store with a running mirror returns once its own change came back on the watch.
      const echoStart = performance.now();
      await registerAll(store, 1000, 1);
      add("etcd", "register latency with mirror running (1 in flight), mean", ms((performance.now() - echoStart) / 1000));
    } finally {
      await store.close();
    }
  } finally {
    await etcd.stop();
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const count = Number(process.argv[2] ?? 100_000);
  await runRegistryBench(count);
}
