/**
 * What two gRPC hops cost per call depending on how the calls arrive, at the pace of 10,000 refreshing
 * connections: three raw relay processes (`relay.ts`) carry a refresh-sized request back to back, one at a time at
 * `rate` calls/s (refreshes from independent clients), and in bursts of `rate` calls once a second (the same
 * rate, the processes woken once per burst). Reads the CPU of the first two relays, as `scale.js` does for its
 * floor. `node bench/dist/relay-pace.js [rate=83] [seconds=20]`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ConnectionSchema, PathSchema, PathSegmentSchema } from "@nsm-ts/api/networkservice";
import { mechanisms } from "@nsm-ts/sdk/networkservice";
import { type RelayKind, refreshRequest, relayCpu } from "./lib/relays.js";

const rate = Number(process.argv[2] ?? 83);
const seconds = Number(process.argv[3] ?? 20);
const calls = Math.round(rate * seconds);

// A local NOOP connection as the client refreshes it: four path segments, each with an ES256 JWT of typical size.
const token = `eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.${"x".repeat(330)}.${"y".repeat(86)}`;
const conn = create(ConnectionSchema, {
  id: "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
  networkService: "svc-bench",
  networkServiceEndpointName: "nse-1",
  mechanism: mechanisms.noop.mechanism(),
  labels: { app: "bench", nodeName: "node-1", podName: "client-0" },
  path: create(PathSchema, {
    index: 0,
    pathSegments: ["nsc-1", "nsmgr-1", "forwarder-1", "nse-1"].map((name, i) =>
      create(PathSegmentSchema, {
        name,
        id: `${i}3f1c2d4-5a6b-4c7d-8e9f-0a1b2c3d4e5f`,
        token,
        expires: timestampFromMs(Date.now() + 600_000),
      }),
    ),
  }),
});
const request = refreshRequest(conn);
const dir = mkdtempSync(join(tmpdir(), "nsm-bench-pace-"));
const load0 = loadavg()[0] ?? 0;
const rows: string[] = [];
try {
  for (const kind of ["typed", "grpc", "http2"] as RelayKind[]) {
    const b2b = await relayCpu(kind, dir, request, calls);
    const paced = await relayCpu(kind, dir, request, calls, rate);
    const burst = await relayCpu(kind, dir, request, calls, rate, Math.round(rate));
    const cell = (r: { perCallMs: number; pctOfCore: number }): string =>
      `${(r.perCallMs * 1000).toFixed(0)} µs (${r.pctOfCore.toFixed(1)} %)`;
    rows.push(`| ${kind} | ${cell(b2b)} | ${cell(paced)} | ${cell(burst)} | ${(paced.perCallMs / burst.perCallMs).toFixed(2)} × |`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(
  [
    `two relays' CPU per call (and % of one core over the run), ${calls} calls of ${request.length} bytes; load ${load0.toFixed(2)} → ${(loadavg()[0] ?? 0).toFixed(2)}`,
    "",
    `| relays built from | back to back | one at a time, ${rate}/s | bursts of ${Math.round(rate)} once a second | one at a time ÷ bursts |`,
    "|---|---|---|---|---|",
    ...rows,
  ].join("\n"),
);
