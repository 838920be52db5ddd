/**
 * Raw gRPC relays (`relay.js`) as the baseline of a bench: start a line of them, and measure the CPU the first
 * two spend per call (each serves the call and makes one, as the nsmgr and the forwarder do) when the same
 * request bytes go through, as fast as they can or paced at a given rate.
 */
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { type Connection, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { NO_CHANNELZ, parseUrl } from "@nsm-ts/base/grpc";
import { mechanisms } from "@nsm-ts/sdk/networkservice";
import { cpuMs } from "./proc-stats.js";
import { repoRoot, startProcess, stop } from "./procs.js";

/** What a relay is built from: our typed layer, grpc-js alone, or bare node:http2 (see relay.ts). */
export type RelayKind = "typed" | "grpc" | "http2";

/** The gRPC method the relays serve: NetworkService/Request. */
export const REQUEST_PATH = "/networkservice.NetworkService/Request";

/** Starts one relay per URL, each passing calls on to the next; the last answers. */
export function relayLine(kind: RelayKind, urls: readonly string[]): Promise<ChildProcess[]> {
  const relay = join(repoRoot, "bench", "dist", "relay.js");
  return Promise.all(urls.map((url, i) => startProcess([relay, kind, url, ...(urls[i + 1] ? [urls[i + 1] as string] : [])], {}, "ready")));
}

/** CPU of a relay line's first two processes. */
export interface RelayCpu {
  /** CPU time per call of the first two relays together, ms. */
  perCallMs: number;
  /** Their CPU over the measured wall time, % of one core. */
  pctOfCore: number;
}

/** The identity (de)serializer of a relay that passes messages on as bytes. */
export const bytes = (b: Buffer): Buffer => b;

/** The encoded refresh request of `conn` (NOOP mechanism preferred), what the relays carry. */
export function refreshRequest(conn: Connection): Uint8Array {
  return toBinary(
    NetworkServiceRequestSchema,
    create(NetworkServiceRequestSchema, { connection: conn, mechanismPreferences: [mechanisms.noop.mechanism()] }),
  );
}

/**
 * Sends `request` (an encoded NetworkServiceRequest) `calls` times, one at a time, through three `kind` relays
 * listening in `dir`; with `perSecond`, call i starts no earlier than i / perSecond s after the first (the pace of a
 * mesh's refreshes, whose per-call cost differs from back-to-back calls: every call wakes the processes up). With
 * `burst` > 1 the calls go in groups of that many at once, a group every `burst / perSecond` s (the same rate, with
 * the processes woken once per group).
 */
export async function relayCpu(
  kind: RelayKind,
  dir: string,
  request: Uint8Array,
  calls: number,
  perSecond?: number,
  burst = 1,
): Promise<RelayCpu> {
  const urls = [1, 2, 3].map((i) => `unix://${join(dir, `relay-${kind}-${i}.sock`)}`);
  const relays = await relayLine(kind, urls);
  const raw = new grpc.Client(parseUrl(urls[0] as string).grpcTarget, grpc.credentials.createInsecure(), NO_CHANNELZ);
  const msg = Buffer.from(request);
  const call = (): Promise<Buffer> =>
    new Promise((resolve, reject) =>
      raw.makeUnaryRequest(REQUEST_PATH, bytes, bytes, msg, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, res) =>
        err || res === undefined ? reject(err ?? new Error("no response")) : resolve(res),
      ),
    );
  try {
    for (let i = 0; i < 200; i++) await call();
    const pids = relays.slice(0, 2).map((c) => c.pid ?? 0);
    const before = pids.map(cpuMs);
    const t0 = performance.now();
    for (let i = 0; i < calls; i += burst) {
      await Promise.all(Array.from({ length: Math.min(burst, calls - i) }, call));
      const wait = perSecond === undefined ? 0 : t0 + ((i + burst) * 1000) / perSecond - performance.now();
      if (wait > 0) await sleep(wait);
    }
    const wallMs = performance.now() - t0;
    const spent = pids.map((pid, i) => cpuMs(pid) - (before[i] ?? 0)).reduce((a, b) => a + b, 0);
    return { perCallMs: spent / calls, pctOfCore: (spent / wallMs) * 100 };
  } finally {
    raw.close();
    await Promise.all(relays.map((c) => stop(c)));
  }
}
