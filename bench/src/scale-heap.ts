/**
 * What a live connection holds: an in-process sandbox (one nsmgr + forwarder, one NOOP endpoint, a client with heal
 * off) opens N connections; heap snapshots after a forced GC before and after are summed by constructor, and the
 * difference per connection is printed (self size, all hops and the client together). Finds duplicated copies and
 * per-connection closures that the process-level RSS and heap numbers of scale.ts cannot tell apart.
 *
 * Run: `node bench/dist/scale-heap.js [connections=2000]` (no refresh happens during it: 10-minute tokens).
 */
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString, writeHeapSnapshot } from "node:v8";
import { runInNewContext } from "node:vm";
import { mechanisms } from "@nsm-ts/sdk/networkservice";
import { createSandbox } from "@nsm-ts/testing/sandbox";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

// A full GC before each snapshot, without needing --expose-gc on the command line.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** Self size and count per "type:name" of every heap object, after a full GC. */
function census(): Map<string, { size: number; count: number }> {
  gc();
  const file = writeHeapSnapshot(join(tmpdir(), `nsm-scale-heap-${process.pid}-${Date.now()}.heapsnapshot`));
  const snap = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
  rmSync(file, { force: true });
  const f = snap.snapshot.meta.node_fields;
  const [iType, iName, iSize, width] = [f.indexOf("type"), f.indexOf("name"), f.indexOf("self_size"), f.length];
  const types = snap.snapshot.meta.node_types[0];
  const out = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType] as number] ?? "?";
    const name = type === "object" || type === "closure" ? (snap.strings[snap.nodes[i + iName] as number] ?? "?") : "";
    const key = `${type}:${name}`;
    const e = out.get(key) ?? { size: 0, count: 0 };
    e.size += snap.nodes[i + iSize] as number;
    e.count++;
    out.set(key, e);
  }
  return out;
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 2000);
  const sb = await createSandbox({ nodes: 1 });
  try {
    await sb.addEndpoint(0, { name: "nse-heap", services: ["heap"] });
    const nsc = sb.addClient(0, { name: "heap-nsc", heal: false, retry: false });
    const req = () => ({ connection: { networkService: "heap" }, mechanismPreferences: [mechanisms.noop.mechanism()] });
    for (let i = 0; i < 20; i++) await nsc.close(await nsc.request(req()));
    const before = census();
    const conns = [];
    for (let i = 0; i < n; i += 32)
      conns.push(...(await Promise.all(Array.from({ length: Math.min(32, n - i) }, () => nsc.request(req())))));
    const after = census();
    const rows = [...after]
      .map(([k, a]) => {
        const b = before.get(k) ?? { size: 0, count: 0 };
        return { k, size: (a.size - b.size) / n, count: (a.count - b.count) / n };
      })
      .filter((r) => r.size > 8)
      .sort((x, y) => y.size - x.size);
    const total = rows.reduce((s, r) => s + r.size, 0);
    process.stdout.write(
      `${n} connections, heap objects per connection (all hops + client, self size): ${(total / 1024).toFixed(1)} kB\n\n`,
    );
    process.stdout.write("| type:constructor | bytes per connection | objects per connection |\n|---|---|---|\n");
    for (const r of rows.slice(0, 40)) process.stdout.write(`| ${r.k} | ${Math.round(r.size)} | ${r.count.toFixed(2)} |\n`);
    // Best effort: the sandbox closes whatever is left.
    for (let i = 0; i < conns.length; i += 32) await Promise.all(conns.slice(i, i + 32).map((c) => nsc.close(c).catch(() => undefined)));
  } finally {
    await sb.close();
  }
}

await main();
