/**
 * Resource manager benchmark: IP allocations and port creates (IP + MAC + record, the multi-step create) per
 * second, on the memory store, on etcd (a private etcd from tools/etcdtest on tmpfs), and over gRPC on loopback,
 * compared with the Alcor anchor (≈3.6 k port creates/s at its peak). Baseline in the same run: the bare bitmap
 * (`RangeBitmap.take`), so the store's share of an allocation is visible.
 * Run: `npx tsc -b bench && node bench/dist/resources.js [baseline|memory|grpc|etcd|replicas …]`.
 */
import { existsSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import {
  AllocateIpAddressRequestSchema,
  IpAddressManager,
  ListRequestSchema,
  NetworkManager,
  NetworkSchema,
  PortManager,
  PortSchema,
  SubnetSchema,
} from "@nsm-ts/api/resources";
import { createClient, createServer, dial } from "@nsm-ts/base/grpc";
import {
  createEtcdResourceStore,
  createMemoryResourceStore,
  createResourceManagers,
  RangeBitmap,
  type ResourceManagers,
  type ResourceStore,
  registerResourceManagers,
} from "@nsm-ts/resources";
import { etcdAvailable, startEtcd } from "@nsm-ts/testing/etcd";

interface Row {
  store: string;
  metric: string;
  value: string;
}
const rows: Row[] = [];
const rate = (n: number, ms: number): string => `${Math.round((n / ms) * 1000).toLocaleString("en-US")} /s`;

async function pool(count: number, inFlight: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) await fn(next++);
    }),
  );
  return performance.now() - start;
}

async function setup(m: ResourceManagers): Promise<void> {
  await m.createNetwork(create(NetworkSchema, { id: "n1", cidr: "10.0.0.0/8" }));
  // /14 = 262,144 addresses: big enough for every run below.
  await m.createSubnet(create(SubnetSchema, { id: "ips", networkId: "n1", cidr: "10.0.0.0/14" }));
  await m.createSubnet(create(SubnetSchema, { id: "ports", networkId: "n1", cidr: "10.4.0.0/14" }));
}

const ipReq = create(AllocateIpAddressRequestSchema, { subnetId: "ips", owner: "bench" });
const portReq = (i: number) => create(PortSchema, { id: `p${i}`, networkId: "n1", fixedIps: [{ subnetId: "ports" }], owner: `nse-${i}` });

async function measure(name: string, store: ResourceStore, sizes: { ips: number; ports: number; serial: number }): Promise<void> {
  const m = createResourceManagers({ store });
  await setup(m);
  await m.allocateIpAddress(ipReq); // warm: loads the subnet bitmap
  const serialMs = await pool(sizes.serial, 1, () => m.allocateIpAddress(ipReq));
  rows.push({
    store: name,
    metric: `IP allocate, 1 in flight (${sizes.serial.toLocaleString("en-US")})`,
    value: `${rate(sizes.serial, serialMs)} (${((serialMs / sizes.serial) * 1000).toFixed(0)} µs each)`,
  });
  const ipMs = await pool(sizes.ips, 64, () => m.allocateIpAddress(ipReq));
  rows.push({ store: name, metric: `IP allocate, 64 in flight (${sizes.ips.toLocaleString("en-US")})`, value: rate(sizes.ips, ipMs) });
  const bulkN = Math.max(1, Math.floor(sizes.ips / 1000));
  const bulkMs = await pool(bulkN, 1, () =>
    m.bulkAllocateIpAddresses({
      $typeName: "nsmts.resources.v1.BulkAllocateIpAddressesRequest",
      subnetId: "ips",
      count: 1000,
      owner: "bulk",
    }),
  );
  rows.push({ store: name, metric: `IP bulk allocate, 1,000 per call (${bulkN} calls)`, value: rate(bulkN * 1000, bulkMs) });
  const portMs = await pool(sizes.ports, 64, (i) => m.createPort(portReq(i)));
  rows.push({
    store: name,
    metric: `port create (IP + MAC + record), 64 in flight (${sizes.ports.toLocaleString("en-US")})`,
    value: rate(sizes.ports, portMs),
  });
  await listPages(name, m);
  await store.close();
}

/** Lists every address of the big subnet in pages of 500: the last page should cost what the first one does. */
async function listPages(name: string, m: ResourceManagers): Promise<void> {
  const pass = async (): Promise<{ pageMs: number[]; total: number }> => {
    const pageMs: number[] = [];
    let token = "";
    let total = 0;
    do {
      const start = performance.now();
      const page = await m.list("ip", create(ListRequestSchema, { subnetId: "ips", pageSize: 500, pageToken: token }));
      pageMs.push(performance.now() - start);
      total += page.items.length;
      token = page.nextPageToken;
    } while (token !== "");
    return { pageMs, total };
  };
  await pass(); // warm-up: the JIT makes the first pages of a cold pass several times slower
  const { pageMs, total } = await pass();
  const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const first = avg(pageMs.slice(0, 5));
  const last = avg(pageMs.slice(-5));
  rows.push({
    store: name,
    metric: `List all ${total.toLocaleString("en-US")} IPs, pages of 500 (${pageMs.length} pages)`,
    value: `${(first * 1000).toFixed(0)} µs first pages, ${(last * 1000).toFixed(0)} µs last pages (${(last / first).toFixed(1)} ×)`,
  });
}

async function overGrpc(sizes: { ips: number; ports: number }): Promise<void> {
  const server = createServer();
  const { managers } = registerResourceManagers(server, { store: createMemoryResourceStore() });
  await setup(managers);
  const url = await server.listen("tcp://127.0.0.1:0");
  const ch = dial(url);
  try {
    const ips = createClient(IpAddressManager, ch);
    const ports = createClient(PortManager, ch);
    // Warm the connection and both ends' JIT first: the first thousand calls run several times slower.
    await pool(2_000, 64, () => ips.allocateIpAddress(ipReq));
    const nets = createClient(NetworkManager, ch);
    const getMs = await pool(sizes.ips, 64, () => nets.getNetwork({ id: "n1" }));
    rows.push({
      store: "memory over gRPC",
      metric: `baseline: GetNetwork (one lookup), 64 in flight (${sizes.ips.toLocaleString("en-US")})`,
      value: rate(sizes.ips, getMs),
    });
    const ipMs = await pool(sizes.ips, 64, () => ips.allocateIpAddress(ipReq));
    rows.push({
      store: "memory over gRPC",
      metric: `IP allocate, 64 in flight (${sizes.ips.toLocaleString("en-US")})`,
      value: rate(sizes.ips, ipMs),
    });
    const portMs = await pool(sizes.ports, 64, (i) => ports.createPort(portReq(i)));
    rows.push({
      store: "memory over gRPC",
      metric: `port create, 64 in flight (${sizes.ports.toLocaleString("en-US")})`,
      value: rate(sizes.ports, portMs),
    });
  } finally {
    ch.close();
    await server.close({ graceMs: 100 });
  }
}

/** Two managers (replicas) on one etcd allocating from one subnet at once: their bitmaps only learn of each other's addresses by conflicts. */
async function twoReplicas(endpoints: string[], each: number): Promise<void> {
  const prefix = "/bench/replicas/";
  const a = createResourceManagers({ store: createEtcdResourceStore({ endpoints, prefix }) });
  const b = createResourceManagers({ store: createEtcdResourceStore({ endpoints, prefix }) });
  try {
    await setup(a);
    await Promise.all([a.allocateIpAddress(ipReq), b.allocateIpAddress(ipReq)]);
    const start = performance.now();
    await Promise.all([pool(each, 64, () => a.allocateIpAddress(ipReq)), pool(each, 64, () => b.allocateIpAddress(ipReq))]);
    const ms = performance.now() - start;
    rows.push({
      store: "etcd, 2 replicas",
      metric: `IP allocate, 64 in flight on each (${(2 * each).toLocaleString("en-US")}, one subnet)`,
      value: `${rate(2 * each, ms)} (${a.conflicts + b.conflicts} conflicts)`,
    });
  } finally {
    await a.store.close();
    await b.store.close();
  }
}

function bitmapBaseline(): void {
  const n = 200_000;
  const b = new RangeBitmap(1n << 18n, "first");
  const start = performance.now();
  for (let i = 0; i < n; i++) b.take();
  rows.push({
    store: "baseline",
    metric: `RangeBitmap.take (first free), ${n.toLocaleString("en-US")}`,
    value: rate(n, performance.now() - start),
  });
  const r = new RangeBitmap(1n << 24n, "random");
  const s2 = performance.now();
  for (let i = 0; i < n; i++) r.take();
  rows.push({
    store: "baseline",
    metric: `RangeBitmap.take (random, 2^24 MAC space), ${n.toLocaleString("en-US")}`,
    value: rate(n, performance.now() - s2),
  });
}

// Sections to run: all by default, or those named on the command line (baseline memory grpc etcd replicas).
const only = new Set(process.argv.slice(2));
const runs = (name: string): boolean => only.size === 0 || only.has(name);
if (runs("baseline")) bitmapBaseline();
if (runs("memory")) await measure("memory", createMemoryResourceStore(), { ips: 50_000, ports: 20_000, serial: 10_000 });
if (runs("grpc")) await overGrpc({ ips: 10_000, ports: 5_000 });
if (runs("etcd") || runs("replicas")) {
  const etcd = etcdAvailable();
  if (etcd.available) {
    const inst = await startEtcd({ tmpDir: existsSync("/dev/shm") ? "/dev/shm" : undefined });
    try {
      if (runs("etcd"))
        await measure("etcd", createEtcdResourceStore({ endpoints: inst.endpoints }), { ips: 3_000, ports: 1_000, serial: 500 });
      if (runs("replicas")) await twoReplicas(inst.endpoints, 1_000);
    } finally {
      await inst.stop();
    }
  } else {
    rows.push({ store: "etcd", metric: "skipped", value: etcd.reason });
  }
}

process.stdout.write("| store | metric | value |\n|---|---|---|\n");
for (const r of rows) process.stdout.write(`| ${r.store} | ${r.metric} | ${r.value} |\n`);
process.stdout.write("\nAnchor: Alcor peak ≈3.6 k port creates/s.\n");
