/**
 * Reads V8 CPU profiles (`node --cpu-prof`, or the inspector's Profiler) and sums the samples of a time window by
 * what the code does: each sample goes to the category of the innermost frame on its stack that names one, so
 * protobuf code called by grpc-js counts as (de)serialisation, crypto called by the token code as tokens, and Node
 * internals called by our elements as our code.
 */
import { readFileSync } from "node:fs";

/** The parts of a `.cpuprofile` used here. */
export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string }; children?: number[] }>;
  /** Microseconds on the monotonic clock (the same clock as `process.hrtime`). */
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Categories in the order they are printed. */
export const CATEGORIES = [
  "tokens: sign, verify, authorize",
  "discovery / registry",
  "monitor / heal",
  "logging",
  "protobuf (de)serialisation",
  "gRPC / HTTP/2 transport",
  "other nsm-ts code",
  "garbage collection",
  "other (node, V8, libraries)",
] as const;

/** One of `CATEGORIES`. */
export type Category = (typeof CATEGORIES)[number];

function categoryOf(functionName: string, url: string): Category | undefined {
  if (functionName === "(garbage collector)") return "garbage collection";
  if (/\/base\/dist\/(token|policy)\/|\/common\/(updatetoken|authorize)\/|\/jose\/|node:internal\/crypto/.test(url)) {
    return "tokens: sign, verify, authorize";
  }
  if (/\/common\/discover|\/common\/discoverforwarder|\/sdk\/dist\/registry\//.test(url)) return "discovery / registry";
  if (/\/common\/monitor\/|\/common\/heal\//.test(url)) return "monitor / heal";
  if (/\/pino|sonic-boom|thread-stream|\/base\/dist\/log\//.test(url)) return "logging";
  if (/@bufbuild\/protobuf/.test(url)) return "protobuf (de)serialisation";
  if (/@grpc\/grpc-js|node:internal\/http2|node:http2|node:net|stream_base_commons|node:internal\/streams/.test(url)) {
    return "gRPC / HTTP/2 transport";
  }
  return undefined;
}

/** CPU ms per category of the samples taken in [fromUs, toUs] (monotonic µs); `(idle)` samples are left out. */
export function breakdown(p: CpuProfile, fromUs: number, toUs: number): Map<Category, number> {
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const cache = new Map<number, Category | "idle">();
  const resolve = (id: number): Category | "idle" => {
    const hit = cache.get(id);
    if (hit !== undefined) return hit;
    const leaf = byId.get(id);
    let cat: Category | "idle" | undefined = leaf?.callFrame.functionName === "(idle)" ? "idle" : undefined;
    // The innermost frame that is either categorised or our own code decides: a handler of ours runs inside grpc-js's
    // callbacks, and must not count as transport just because grpc-js is further down the stack.
    for (let cur: number | undefined = id; cat === undefined && cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)?.callFrame;
      if (f === undefined) break;
      cat = categoryOf(f.functionName, f.url);
      if (cat === undefined && /\/(base|sdk|sdk-linux|statedb|cmd-[a-z0-9-]+)\/dist\//.test(f.url)) cat = "other nsm-ts code";
    }
    const out = cat ?? "other (node, V8, libraries)";
    cache.set(id, out);
    return out;
  };
  const out = new Map<Category, number>();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (t < fromUs || t > toUs) continue;
    // A sample stands for the time until the next one.
    const span = (p.timeDeltas[i + 1] ?? dt) / 1000;
    const cat = resolve(p.samples[i] as number);
    if (cat === "idle") continue;
    out.set(cat, (out.get(cat) ?? 0) + span);
  }
  return out;
}

/** Loads a `.cpuprofile` file. */
export function loadProfile(path: string): CpuProfile {
  return JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
}
