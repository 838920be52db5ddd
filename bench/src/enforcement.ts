/**
 * Enforcement latency: a security group change → the rules applied on every affected interface. The resource
 * managers (memory store) serve gRPC on loopback with their Watch RPCs; the enforcer reads and watches them as a
 * forwarder does. `ports` ports are members of the remote group every enforced connection's rule names, so each
 * rendered table carries that many addresses. Series (interleaved per round, so load hits all alike):
 *
 * - baseline: one `nft -f -` replacing one connection's table (the unit cost of applying);
 * - control plane only: `connections` enforced connections with the kernel calls replaced by no-ops (watch →
 *   re-render → reconcile);
 * - kernel: `namespaces` client namespaces, one enforced interface each, real nft/ip in each.
 *
 * Run as root: `node bench/dist/enforcement.js [ports=1000] [namespaces=10] [rounds=10] [connections=1000]`.
 * The kernel series skips with a one-line reason without root or nft.
 */
import { randomBytes } from "node:crypto";
import { cpus, loadavg, release } from "node:os";
import { create } from "@bufbuild/protobuf";
import { ListRequestSchema, NetworkSchema, type Port, PortSchema, SecurityGroupSchema, SubnetSchema } from "@nsm-ts/api/resources";
import { createServer, dial } from "@nsm-ts/base/grpc";
import { createMemoryResourceStore, type ResourceManagers, registerResourceManagers } from "@nsm-ts/resources";
import {
  Batch,
  createIpExecutor,
  createNamedNetns,
  currentNetns,
  deleteNamedNetns,
  enforcement,
  type IpExecutor,
  type Netns,
  nft,
  runCommand,
} from "@nsm-ts/sdk-linux";

const rule = { etherType: "IPv4", portRangeMax: 0, remoteIpPrefix: "" };
/** The group of the enforced ports of one series (each series its own, so a change reaches one enforcer only). */
const web = (port: number, id = "web") =>
  create(SecurityGroupSchema, {
    id,
    rules: [
      { ...rule, direction: "ingress", protocol: "tcp", portRangeMin: port, portRangeMax: port, remoteGroupId: "clients" },
      { ...rule, direction: "egress", protocol: "", portRangeMin: 0, remoteGroupId: "" },
    ],
  });

function pct(sorted: readonly number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

/** Counts applied tables that carry `tcp dport <port>`, so a round waits for the event, not a timer. */
class Counter {
  #waiters: Array<{ port: number; n: number; resolve: () => void }> = [];
  readonly #seen = new Map<number, number>();
  saw(t: nft.NftTable): void {
    const rules = t.chains.find((c) => c.name === "sg_ingress")?.rules ?? [];
    const m = rules.map((r) => /tcp dport (\d+) accept$/.exec(r)).find((x) => x !== null);
    if (!m) return;
    const port = Number(m[1]);
    const n = (this.#seen.get(port) ?? 0) + 1;
    this.#seen.set(port, n);
    const still = [];
    for (const w of this.#waiters) {
      if (w.port === port && w.n <= n) w.resolve();
      else still.push(w);
    }
    this.#waiters = still;
  }
  until(port: number, n: number): Promise<void> {
    if ((this.#seen.get(port) ?? 0) >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ port, n, resolve }));
  }
}

interface Series {
  readonly name: string;
  readonly interfaces: number;
  /** The group this series changes; none for the baseline. */
  readonly group?: string;
  /** One round: resolves when every interface has the group's rule for `port`. */
  round(port: number): Promise<void>;
  readonly samples: number[];
}

async function kernelUnavailable(): Promise<string | undefined> {
  if (process.platform !== "linux") return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return "not root (needs root or CAP_NET_ADMIN+CAP_SYS_ADMIN)";
  const r = await runCommand(["nft", "--version"]).catch(() => undefined);
  if (r?.code !== 0) return "nft (nftables) not installed";
  return undefined;
}

async function main(): Promise<void> {
  const [ports = 1000, namespaces = 10, rounds = 10, connections = 1000] = process.argv.slice(2).map(Number);
  const stop = new AbortController();
  const server = createServer();
  const { managers }: { managers: ResourceManagers } = registerResourceManagers(server, { store: createMemoryResourceStore() });
  await managers.createNetwork(create(NetworkSchema, { id: "n1", cidr: "169.254.0.0/16" }));
  await managers.createSubnet(create(SubnetSchema, { id: "s1", networkId: "n1", cidr: "169.254.0.0/16" }));
  await managers.createSecurityGroup(create(SecurityGroupSchema, { id: "clients" }));
  await managers.createSecurityGroup(web(1, "web-cp"));
  await managers.createSecurityGroup(web(1, "web-k"));
  await managers.bulkCreatePorts(
    Array.from({ length: ports }, (_, i) =>
      create(PortSchema, { id: `m${i}`, networkId: "n1", fixedIps: [{ subnetId: "s1" }], securityGroupIds: ["clients"] }),
    ),
  );
  for (const [prefix, n] of [
    ["web-cp", connections],
    ["web-k", namespaces],
  ] as const) {
    await managers.bulkCreatePorts(
      Array.from({ length: n }, (_, i) =>
        create(PortSchema, { id: `${prefix}-${i}`, networkId: "n1", fixedIps: [{ subnetId: "s1" }], securityGroupIds: [prefix] }),
      ),
    );
  }
  const channel = dial(await server.listen("tcp://127.0.0.1:0"));
  const series: Series[] = [];
  const cleanups: Array<() => Promise<void>> = [];
  let port = 1000;

  // Control plane only: no-op kernel, every connection in this process's netns under its own interface name.
  {
    const counter = new Counter();
    const noopNft: nft.NftExecutor = {
      apply: async (_ns, t) => counter.saw(t),
      delete: async () => undefined,
      list: async () => [],
      run: async () => undefined,
      query: async () => "",
    };
    const noopIp: IpExecutor = { mode: "batch", apply: async () => undefined, query: async () => "[]" };
    const enforcer = enforcement.createEnforcer({
      owner: "bench-cp",
      view: enforcement.createGrpcResourceView(channel),
      signal: stop.signal,
      nft: noopNft,
      exec: noopIp,
      applyTimeoutMs: 120_000,
    });
    const url = (await currentNetns()).url;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: connections }, (_, i) =>
        enforcer.attach({ connectionId: `cp${i}`, netnsUrl: url, ifName: `b${i}`, portId: `web-cp-${i}`, peer: [], policies: [] }),
      ),
    );
    process.stdout.write(`control plane: ${connections} connections attached in ${Math.round(performance.now() - t0)} ms\n`);
    series.push({
      name: `control plane only (no-op kernel), ${ports.toLocaleString("en-US")} ports in the remote group`,
      interfaces: connections,
      group: "web-cp",
      samples: [],
      round: (p) => counter.until(p, connections),
    });
  }

  const why = await kernelUnavailable();
  if (why !== undefined) {
    process.stdout.write(`kernel series skipped: ${why}\n`);
  } else {
    const tag = randomBytes(3).toString("hex");
    const names = Array.from({ length: namespaces }, (_, i) => `nsmts-be-${tag}-${i}`);
    cleanups.push(async () => {
      for (const n of names) await deleteNamedNetns(n).catch(() => undefined);
    });
    const onSignal = (): void => {
      void Promise.all(names.map((n) => deleteNamedNetns(n).catch(() => undefined))).then(() => process.exit(130));
    };
    process.once("SIGINT", onSignal);
    const ip = createIpExecutor();
    const nss: Netns[] = [];
    for (const n of names) {
      const ns = await createNamedNetns(n);
      await new Batch(ip, ns).addVeth({ name: "nsm-b", peerName: "nsm-p" }).setUp("nsm-b").commit();
      nss.push(ns);
    }
    const counter = new Counter();
    const inner = nft.createNftExecutor();
    const spy: nft.NftExecutor = {
      ...inner,
      apply: async (ns, t) => {
        await inner.apply(ns, t);
        counter.saw(t);
      },
    };
    const enforcer = enforcement.createEnforcer({
      owner: "bench-k",
      view: enforcement.createGrpcResourceView(channel),
      signal: stop.signal,
      nft: spy,
      exec: ip,
      applyTimeoutMs: 120_000,
    });
    for (const [i, ns] of nss.entries()) {
      await enforcer.attach({ connectionId: `k${i}`, netnsUrl: ns.path, ifName: "nsm-b", portId: `web-k-${i}`, peer: [], policies: [] });
    }
    series.push({
      name: `kernel: one interface per netns, ${ports.toLocaleString("en-US")} ports in the remote group`,
      interfaces: namespaces,
      group: "web-k",
      samples: [],
      round: (p) => counter.until(p, namespaces),
    });
    // Baseline: the unit cost, one table replaced in one netns (as rendered, with every member address).
    const sample = nss[0];
    if (sample !== undefined) {
      const members = (await managers.list<Port>("port", create(ListRequestSchema, { pageSize: 1000 }))).items.filter((p) =>
        p.securityGroupIds.includes("clients"),
      );
      const table = enforcement.renderSecurityGroups("bench-base", "base", {
        ifName: "nsm-b",
        groups: [web(7)],
        members: new Map([["clients", members.flatMap((p) => p.fixedIps.map((f) => f.ipAddress))]]),
      }).table;
      series.unshift({
        name: "baseline: one `nft -f -` replacing one table",
        interfaces: 1,
        samples: [],
        round: () => inner.apply(sample, table),
      });
      cleanups.push(() => inner.delete(sample, table));
    }
  }

  try {
    for (let r = -1; r < rounds; r++) {
      for (const s of series) {
        port++;
        const t0 = performance.now();
        const done = s.round(port);
        if (s.group !== undefined) await managers.updateSecurityGroup(web(port, s.group));
        await done;
        if (r >= 0) s.samples.push(performance.now() - t0);
      }
    }
  } finally {
    stop.abort();
    for (const c of cleanups.reverse()) await c();
    channel.close();
    await server.close();
  }

  process.stdout.write(
    `\n${cpus()[0]?.model ?? "cpu"} × ${cpus().length}, Linux ${release()}, node ${process.version}, load ${loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")}\n\n`,
  );
  process.stdout.write("| series | interfaces | change → applied everywhere p50 ms | p99 ms |\n|---|---|---|---|\n");
  for (const s of series) {
    const t = [...s.samples].sort((a, b) => a - b);
    process.stdout.write(`| ${s.name} | ${s.interfaces.toLocaleString("en-US")} | ${pct(t, 50).toFixed(1)} | ${pct(t, 99).toFixed(1)} |\n`);
  }
  process.stdout.write(`\n${rounds} rounds after 1 warm-up, series interleaved; p99 of ${rounds} samples is the maximum.\n`);
}

const isMain = process.argv[1]?.endsWith("enforcement.js") ?? false;
if (isMain) await main();
