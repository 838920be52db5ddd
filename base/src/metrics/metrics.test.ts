/**
 * The metrics interceptors over real gRPC on loopback: counts and codes per method on both sides, latency
 * histograms, open streams, and the `/metrics` endpoint (404 elsewhere, closed by `close`).
 */
import { expect } from "chai";
import { realClock } from "../clock/index.js";
import { type Channel, createClient, createServer, dial, healthService, type NsmServer } from "../grpc/index.js";
import { createMetrics, type Metrics } from "./index.js";

const CHECK = "/grpc.health.v1.Health/Check";

describe("metrics", () => {
  let server: NsmServer | undefined;
  let ch: Channel | undefined;
  let metrics: Metrics | undefined;
  afterEach(async () => {
    ch?.close();
    await server?.close({ graceMs: 0 });
    await metrics?.close();
    server = undefined;
    ch = undefined;
    metrics = undefined;
  });

  it("counts calls by method and code on both sides and serves them at /metrics", async () => {
    const m = createMetrics({ program: "test", processMetrics: false });
    metrics = m;
    server = createServer({ interceptors: [m.serverInterceptor] });
    const url = await server.listen("tcp://127.0.0.1:0");
    ch = dial(url, { interceptors: [m.clientInterceptor] });
    const health = createClient(healthService, ch);
    await health.check({ service: "" });
    await health.check({ service: "" });
    await health.check({ service: "nope" }).catch(() => undefined);
    m.gauge("nsm_test_things", "things", () => [[{ kind: "a" }, 3]], ["kind"]);

    const at = await m.listen("tcp://127.0.0.1:0");
    const base = at.replace(/^tcp:/, "http:");
    const body = await (await fetch(`${base}/metrics`)).text();
    // Label order differs between metric types; compare with labels sorted.
    const norm = (line: string): string => line.replace(/\{(.*)\}/, (_, l: string) => `{${l.split(",").sort().join(",")}}`);
    const lines = body.split("\n").map(norm);
    const has = (line: string): void => {
      expect(lines, line).to.include(norm(line));
    };
    has(`nsm_grpc_server_handled_total{method="${CHECK}",code="OK",program="test"} 2`);
    has(`nsm_grpc_server_handled_total{method="${CHECK}",code="NotFound",program="test"} 1`);
    has(`nsm_grpc_server_errors_total{method="${CHECK}",code="NotFound",program="test"} 1`);
    has(`nsm_grpc_client_handled_total{method="${CHECK}",code="OK",program="test"} 2`);
    has(`nsm_grpc_client_errors_total{method="${CHECK}",code="NotFound",program="test"} 1`);
    has(`nsm_grpc_server_handling_seconds_count{method="${CHECK}",program="test"} 3`);
    has(`nsm_grpc_client_handling_seconds_count{method="${CHECK}",program="test"} 3`);
    has(`nsm_test_things{kind="a",program="test"} 3`);
    has(`nsm_active_connections{program="test"} 0`);
    expect((await fetch(`${base}/other`)).status).to.equal(404);
  });

  it("rejects a listen URL that is not tcp://host:port", async () => {
    metrics = createMetrics({ program: "test", processMetrics: false });
    let err: unknown;
    await metrics.listen("unix:///tmp/x.sock").catch((e: unknown) => (err = e));
    expect(String(err)).to.match(/expected tcp:\/\/host:port/);
  });

  it("reports nsm_active_connections from the chain's count once the program gives one", async () => {
    metrics = createMetrics({ program: "test", processMetrics: false });
    const active = async (): Promise<string | undefined> =>
      (await metrics?.registry.metrics())?.split("\n").find((l) => l.startsWith("nsm_active_connections{"));
    expect(await active()).to.equal('nsm_active_connections{program="test"} 0');
    let held = 3;
    metrics.countConnections(() => held);
    expect(await active()).to.equal('nsm_active_connections{program="test"} 3');
    held = 0; // e.g. the hop's timeout closed them: no Close passed the interceptor
    expect(await active()).to.equal('nsm_active_connections{program="test"} 0');
  });

  it("reports the real clock's pending timers as nsm_clock_timers_pending, down again once they fire or stop", async () => {
    metrics = createMetrics({ program: "test", processMetrics: false });
    const pending = async (): Promise<number> =>
      Number(
        (await metrics?.registry.metrics())
          ?.split("\n")
          .find((l) => l.startsWith("nsm_clock_timers_pending{"))
          ?.split(" ")[1],
      );
    const before = await pending();
    const a = realClock.setTimer(60_000, () => undefined);
    const fired = new Promise<void>((resolve) => realClock.setTimer(1, resolve));
    expect(await pending()).to.equal(before + 2);
    await fired;
    expect(await pending()).to.equal(before + 1);
    expect(a.stop()).to.equal(true);
    expect(a.stop()).to.equal(false);
    expect(await pending()).to.equal(before);
  });
});
