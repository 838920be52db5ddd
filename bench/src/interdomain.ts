/**
 * Interdomain: Request latency of `svc@cluster2` from a client of cluster1 (nsc → nsmgr → forwarder → nsmgr-proxy →
 * nsmgr-proxy → nsmgr → forwarder → endpoint: seven gRPC hops, all the real chains, NOOP data plane) against seven
 * raw gRPC hops (relay servers that only pass the NetworkServiceRequest on) in the same process and run, the two
 * series interleaved. Both domains are in-process sandboxes on loopback TCP sharing one test DNS server, so the
 * ratio is the cost of the chains, not of process boundaries.
 * Run: `npx tsc -b bench && node bench/dist/interdomain.js [requests]` (default 200).
 */
import { cpus, loadavg } from "node:os";
import { create } from "@bufbuild/protobuf";
import { type Connection, NetworkService, type NetworkServiceRequest, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { type Channel, createClient, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { createDomainsDns } from "@nsm-ts/testing/dns";
import { freePort } from "@nsm-ts/testing/net";
import { createSandbox, type Sandbox } from "@nsm-ts/testing/sandbox";

const HOPS = 7;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: pct(s, 50), p99: pct(s, 99) };
};
const ms = (v: number): string => `${v.toFixed(2)} ms`;

/** `hops` relay servers in a line on loopback TCP; returns the first URL and how to stop them. */
async function relays(hops: number): Promise<{ url: string; close(): Promise<void> }> {
  const urls: string[] = [];
  for (let i = 0; i < hops; i++) urls.push(`tcp://127.0.0.1:${await freePort()}`);
  const servers: NsmServer[] = [];
  const channels: Channel[] = [];
  for (let i = 0; i < hops; i++) {
    const nextUrl = urls[i + 1];
    const ch = nextUrl === undefined ? undefined : dial(nextUrl);
    if (ch) channels.push(ch);
    const next = ch ? createClient(NetworkService, ch) : undefined;
    const s = createServer();
    s.addService(NetworkService, {
      request: async (req: NetworkServiceRequest) => (next ? next.request(req) : (req.connection as Connection)),
      close: async () => ({}),
    });
    await s.listen(urls[i] as string);
    servers.push(s);
  }
  return {
    url: urls[0] as string,
    async close() {
      for (const c of channels) c.close();
      await Promise.all(servers.map((s) => s.close({ graceMs: 0 })));
    },
  };
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 200);
  const dns = await createDomainsDns();
  const sandboxes: Sandbox[] = [];
  const raw = await relays(HOPS);
  const rawChannel = dial(raw.url);
  try {
    const c1 = await createSandbox({ nodes: 1, domain: { name: "cluster1", dns } });
    sandboxes.push(c1);
    const c2 = await createSandbox({ nodes: 1, domain: { name: "cluster2", dns } });
    sandboxes.push(c2);
    await c2.addEndpoint(0, { name: "nse-b", services: ["bench"] });
    const nsc = c1.addClient(0, { refresh: false, heal: false, retry: false });
    const req = (): NetworkServiceRequest => create(NetworkServiceRequestSchema, { connection: { networkService: "bench@cluster2" } });
    const sample = await nsc.request(req());
    if ((sample.path?.pathSegments.length ?? 0) !== HOPS + 1) throw new Error(`interdomain bench: expected ${HOPS + 1} path segments`);
    await nsc.close(sample);
    const rawClient = createClient(NetworkService, rawChannel);
    const rawReq = create(NetworkServiceRequestSchema, { connection: sample });
    const series = { interdomain: [] as number[], raw: [] as number[] };
    for (let i = 0; i < Math.min(20, n); i++) {
      await nsc.close(await nsc.request(req()));
      await rawClient.request(rawReq);
    }
    for (let i = 0; i < n; i++) {
      let t = performance.now();
      const conn = await nsc.request(req());
      series.interdomain.push(performance.now() - t);
      await nsc.close(conn);
      t = performance.now();
      await rawClient.request(rawReq);
      series.raw.push(performance.now() - t);
    }
    const id = stats(series.interdomain);
    const r = stats(series.raw);
    process.stdout.write(
      [
        `machine: ${cpus().length} cores, load ${loadavg()
          .map((x) => x.toFixed(2))
          .join(" ")}; ${n} requests per series`,
        "| series | p50 | p99 | p50 ratio |",
        "|---|---|---|---|",
        `| interdomain Request (svc@cluster2, ${HOPS} hops through both nsmgr-proxies) | ${ms(id.p50)} | ${ms(id.p99)} | ${(id.p50 / r.p50).toFixed(1)} × raw |`,
        `| ${HOPS} raw gRPC hops (in-process relays) | ${ms(r.p50)} | ${ms(r.p99)} | 1 |`,
        "",
      ].join("\n"),
    );
  } finally {
    rawChannel.close();
    for (const sb of sandboxes.reverse()) await sb.close();
    await raw.close();
    await dns.close();
  }
}

await main();
