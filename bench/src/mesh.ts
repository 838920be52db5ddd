/**
 * Mesh: Request latency through the real programs (cmd-registry, cmd-nsmgr, cmd-forwarder, cmd-endpoint as
 * processes, NOOP data plane) against the same number of raw gRPC hops (relay processes that only pass the
 * NetworkServiceRequest on, no NSM chain) in the same run, local (3 hops: nsmgr → forwarder → endpoint) and
 * remote (5 hops: nsmgr → forwarder → nsmgr → forwarder → endpoint); and the heal time after an endpoint is
 * killed (SIGKILL) while a second endpoint of the same service is registered.
 * Run: `npx tsc -b bench && node bench/dist/mesh.js [requests]` (default 200 per series). The client is the SDK's
 * standard `client()` in this process, connected to node 1's nsmgr socket.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { type Connection, NetworkService, type NetworkServiceRequest, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { createClient, dial } from "@nsm-ts/base/grpc";
import { devIdentity } from "@nsm-ts/base/identity";
import { createTokenGenerator } from "@nsm-ts/base/token";
import { client, mechanisms, type NetworkServiceElement } from "@nsm-ts/sdk/networkservice";
import { freePort } from "@nsm-ts/testing/net";
import { ms, program, stats, stop, stopAll } from "./lib/procs.js";
import { relayLine } from "./lib/relays.js";

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 200);
  const dir = mkdtempSync(join(tmpdir(), "nsm-bench-mesh-"));
  const sock = (name: string): string => `unix://${join(dir, name)}`;
  try {
    const phase = (what: string): boolean => process.stderr.write(`mesh bench: ${what}\n`);
    const registryUrl = `tcp://127.0.0.1:${await freePort()}`;
    const nodes = [sock("nsm-1.sock"), sock("nsm-2.sock")] as const;
    const [node1, node2] = nodes;
    const endpoint = (name: string, socket: string, service: string): Promise<ChildProcess> =>
      program(
        "cmd-endpoint",
        {
          NSM_NAME: name,
          NSM_CONNECT_TO: socket,
          NSM_LISTEN_ON: sock(`${name}.sock`),
          NSM_SERVICE_NAMES: service,
          NSM_CIDR_PREFIX: "169.254.20.0/22",
        },
        '"cmd-endpoint serving"',
      );
    // Raw hops: 3 and 5 relay processes in a line (each dials the next lazily, so all start at once).
    const relayChain = async (hops: number, tag: string): Promise<string> => {
      const urls = Array.from({ length: hops }, (_, i) => sock(`relay-${tag}-${i + 1}.sock`));
      await relayLine("typed", urls);
      return urls[0] as string;
    };
    // Everything that does not depend on something else starts at once; registrations retry until their nsmgr is up.
    const [raw3url, raw5url] = await Promise.all([
      relayChain(3, "l"),
      relayChain(5, "r"),
      program("cmd-registry", { NSM_LISTEN_ON: registryUrl }, '"cmd-registry serving"'),
      ...nodes.map(async (socket, i) => {
        await program(
          "cmd-nsmgr",
          {
            NSM_NAME: `nsmgr-${i + 1}`,
            NODE_NAME: `node-${i + 1}`,
            NSM_LISTEN_ON: `${socket},tcp://127.0.0.1:${await freePort()}`,
            NSM_REGISTRY_URL: registryUrl,
          },
          '"cmd-nsmgr serving"',
        );
        await program(
          "cmd-forwarder",
          { NSM_NAME: `forwarder-${i + 1}`, NSM_CONNECT_TO: socket, NSM_LISTEN_ON: sock(`forwarder-${i + 1}.sock`) },
          '"cmd-forwarder serving"',
        );
      }),
    ]);
    await Promise.all([endpoint("nse-local", node1, "bench-local"), endpoint("nse-remote", node2, "bench-remote")]);
    phase("mesh and relays up");
    const raw3 = createClient(NetworkService, dial(raw3url as string));
    const raw5 = createClient(NetworkService, dial(raw5url as string));

    const id = await devIdentity("bench-nsc");
    const tokenGenerator = createTokenGenerator(id, { maxTokenLifetimeMs: 600_000 });
    const nsc = client({ name: "bench-nsc", connectTo: node1, tokenGenerator, insecure: true, refresh: false, heal: false, retry: false });
    const reqOf = (service: string): NetworkServiceRequest =>
      create(NetworkServiceRequestSchema, { connection: { networkService: service }, mechanismPreferences: [mechanisms.noop.mechanism()] });

    // One connection to copy for the raw series, so both carry a message of the size the mesh returns.
    const sample = await nsc.request(reqOf("bench-local"));
    await nsc.close(sample);
    const rawReq = create(NetworkServiceRequestSchema, { connection: sample, mechanismPreferences: [mechanisms.noop.mechanism()] });

    const series: Record<string, number[]> = { local: [], "raw 3 hops": [], remote: [], "raw 5 hops": [] };
    const warm = Math.min(20, n);
    for (let i = 0; i < warm; i++) {
      await nsc.close(await nsc.request(reqOf("bench-local")));
      await nsc.close(await nsc.request(reqOf("bench-remote")));
      await raw3.request(rawReq);
      await raw5.request(rawReq);
    }
    // Alternate the four series so load changes on this shared machine hit all of them alike.
    for (let i = 0; i < n; i++) {
      for (const [name, run] of [
        ["local", async () => nsc.request(reqOf("bench-local"))],
        ["raw 3 hops", async () => raw3.request(rawReq)],
        ["remote", async () => nsc.request(reqOf("bench-remote"))],
        ["raw 5 hops", async () => raw5.request(rawReq)],
      ] as const) {
        const t = performance.now();
        const conn = await run();
        (series[name] as number[]).push(performance.now() - t);
        if (name === "local" || name === "remote") await nsc.close(conn);
      }
    }
    await nsc.dispose();
    phase("latency series done");

    // Heal: a connection on nse-a; nse-b serves the same service; kill nse-a; time until the client's chain has
    // re-requested successfully through nse-b.
    const healRounds = 5;
    const healMs: number[] = [];
    let healed: ((c: Connection) => void) | undefined;
    const watcher: NetworkServiceElement = {
      name: "bench-heal-watch",
      async request(ctx, req, next) {
        const c = await next.request(ctx, req);
        healed?.(c);
        return c;
      },
      close: (ctx, conn, next) => next.close(ctx, conn),
    };
    const healer = client({ name: "bench-heal", connectTo: node1, tokenGenerator, insecure: true, additional: [watcher] });
    let current = await endpoint("nse-heal-0", node1, "bench-heal");
    for (let r = 0; r < healRounds; r++) {
      const conn = await healer.request(reqOf("bench-heal"));
      phase(`heal round ${r + 1}`);
      const spare = await endpoint(`nse-heal-${r + 1}`, node1, "bench-heal");
      const was = conn.networkServiceEndpointName;
      const done = new Promise<number>((resolve) => {
        healed = (c) => {
          if (c.networkServiceEndpointName !== was) resolve(performance.now());
        };
      });
      const t = performance.now();
      await stop(current, "SIGKILL");
      const end = await done;
      healed = undefined;
      healMs.push(end - t);
      await healer.close(conn);
      current = spare;
    }
    await healer.dispose();

    const l = stats(series.local as number[]);
    const r3 = stats(series["raw 3 hops"] as number[]);
    const rm = stats(series.remote as number[]);
    const r5 = stats(series["raw 5 hops"] as number[]);
    const h = stats(healMs);
    process.stdout.write(
      [
        `machine: ${cpus().length} cores, load ${loadavg()
          .map((x) => x.toFixed(2))
          .join(" ")}; ${n} requests per series`,
        "| series | p50 | p99 | p50 ratio |",
        "|---|---|---|---|",
        `| local Request through the programs (nsmgr → forwarder → endpoint) | ${ms(l.p50)} | ${ms(l.p99)} | ${(l.p50 / r3.p50).toFixed(1)} × raw |`,
        `| 3 raw gRPC hops (relay processes) | ${ms(r3.p50)} | ${ms(r3.p99)} | 1 |`,
        `| remote Request (nsmgr → forwarder → nsmgr → forwarder → endpoint) | ${ms(rm.p50)} | ${ms(rm.p99)} | ${(rm.p50 / r5.p50).toFixed(1)} × raw |`,
        `| 5 raw gRPC hops (relay processes) | ${ms(r5.p50)} | ${ms(r5.p99)} | 1 |`,
        `| heal after SIGKILL of the endpoint (${healRounds} rounds; min ${ms(Math.min(...healMs))}, max ${ms(Math.max(...healMs))}) | ${ms(h.p50)} | — | — |`,
        "",
      ].join("\n"),
    );
  } finally {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
