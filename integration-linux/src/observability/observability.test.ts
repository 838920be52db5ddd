/**
 * Operability of the real programs as processes: every program serves Prometheus metrics on
 * NSM_METRICS_LISTEN_ON whose series count the request, refresh and close of a connection; and the log level
 * switches at runtime (SIGUSR1 → trace lines appear, SIGUSR2 → they stop).
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { expect } from "chai";
import {
  type LogRecord,
  type Program,
  type ProgramSet,
  repoRoot,
  startEndpoint,
  startNode,
  startRegistry,
  useProgramSet,
} from "../programs/harness.js";

const SERVICE = "icmp-responder";
const METRICS = { NSM_METRICS_LISTEN_ON: "tcp://127.0.0.1:0" };
const REQUEST = "/networkservice.NetworkService/Request";
const CLOSE = "/networkservice.NetworkService/Close";

/** Prometheus text exposition → `name{labels}` → value (labels sorted, `program` dropped). */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)]
      .filter((l) => l[1] !== "program")
      .map((l) => `${l[1]}="${l[2]}"`)
      .sort();
    out.set(labels.length ? `${m[1]}{${labels.join(",")}}` : (m[1] as string), Number(m[3]));
  }
  return out;
}

/** The program's /metrics URL from its start-up log line. */
async function metricsUrl(p: Program): Promise<string> {
  return String((await p.waitFor("serving Prometheus metrics")).url);
}

async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(url);
  const body = await res.text();
  expect(res.status, body).to.equal(200);
  expect(res.headers.get("content-type")).to.match(/^text\/plain/);
  return parseMetrics(body);
}

const v = (m: Map<string, number>, key: string): number => m.get(key) ?? 0;

/** Scrapes `url` until `ok` holds for the result (every 50 ms, up to `timeoutMs`); fails naming `what`. */
async function scrapeUntil(
  url: string,
  ok: (m: Map<string, number>) => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<Map<string, number>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const m = await scrape(url);
    if (ok(m)) return m;
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("observability of the programs", function () {
  this.timeout(90_000);
  let set: ProgramSet;
  useProgramSet((s) => {
    set = s;
  });

  it("/metrics of every program counts a connection's request, refresh and close", async () => {
    const { registry, url } = await startRegistry(set, METRICS);
    const node = await startNode(set, 1, url, METRICS);
    const nse = await startEndpoint(set, "nse-1", node.socket, SERVICE, METRICS);
    const nsc = set.spawn(
      "cmd-nsc",
      {
        NSM_NAME: "nsc-1",
        NSM_CONNECT_TO: node.socket,
        NSM_NETWORK_SERVICES: `noop://${SERVICE}`,
        NSM_MAX_TOKEN_LIFETIME: "10s",
        NSM_REQUEST_TIMEOUT: "2s",
        ...METRICS,
      },
      "nsc-1",
    );
    const urls = {
      registry: await metricsUrl(registry),
      nsmgr: await metricsUrl(node.nsmgr),
      forwarder: await metricsUrl(node.forwarder),
      nse: await metricsUrl(nse),
      nsc: await metricsUrl(nsc),
    };
    const conn = (await nsc.waitFor("connected")).connection as { id: string; path: { id: string }[] };
    const nseId = conn.path.at(-1)?.id;
    await nse.waitFor("connection refreshed", (r: LogRecord) => r.connId === nseId, 10_000);

    // While the connection is up: one live connection at each hop, Requests = 1 + refreshes.
    for (const name of ["nsmgr", "forwarder", "nse"] as const) {
      // The endpoint logs the refresh before the response has travelled back through the forwarder and the
      // nsmgr, whose interceptors count it when their call completes: scrape until that hop has counted it.
      const m = await scrapeUntil(urls[name], (x) => v(x, "nsm_connection_refreshes_total") >= 1, `${name} counted the refresh`);
      expect(v(m, "nsm_active_connections"), name).to.equal(1);
      const requests = v(m, 'nsm_connection_requests_total{code="OK"}');
      const refreshes = v(m, "nsm_connection_refreshes_total");
      expect(refreshes, `${name} refreshes`).to.be.at.least(1);
      expect(requests, `${name} requests`).to.equal(refreshes + 1);
      expect(v(m, `nsm_grpc_server_handled_total{code="OK",method="${REQUEST}"}`), name).to.equal(requests);
      expect(v(m, `nsm_grpc_server_handling_seconds_count{method="${REQUEST}"}`), name).to.equal(requests);
      expect(v(m, `nsm_grpc_server_handling_seconds_bucket{le="+Inf",method="${REQUEST}"}`), name).to.equal(requests);
      if (name !== "nse") {
        // Each Request was passed on to the next hop.
        expect(v(m, `nsm_grpc_client_handled_total{code="OK",method="${REQUEST}"}`), `${name} client`).to.equal(requests);
      }
    }
    const c = await scrape(urls.nsc);
    expect(v(c, `nsm_grpc_client_handled_total{code="OK",method="${REQUEST}"}`)).to.be.at.least(2);
    expect(v(c, "nsm_process_resident_memory_bytes")).to.be.greaterThan(0);

    // The registry holds the forwarder and the endpoint; the nsmgr watches it.
    const r = await scrape(urls.registry);
    expect(v(r, 'nsm_registry_entries{kind="nse"}')).to.equal(2);
    expect(v(r, 'nsm_registry_entries{kind="ns"}')).to.be.at.least(1);
    expect(v(r, 'nsm_registry_watchers{service="registry.NetworkServiceEndpointRegistry"}'), "the nsmgr's watches").to.be.at.least(1);
    expect(v(r, 'nsm_grpc_server_handled_total{code="OK",method="/registry.NetworkServiceEndpointRegistry/Register"}')).to.be.at.least(2);

    // SIGTERM on the client closes the connection along the path.
    expect(await nsc.stop("SIGTERM")).to.deep.equal({ code: 0, signal: null });
    await nse.waitFor("connection closed", (rec: LogRecord) => rec.connId === nseId, 5_000);
    for (const name of ["nsmgr", "forwarder", "nse"] as const) {
      const m = await scrape(urls[name]);
      expect(v(m, 'nsm_connection_closes_total{code="OK"}'), name).to.equal(1);
      expect(v(m, `nsm_grpc_server_handled_total{code="OK",method="${CLOSE}"}`), name).to.equal(1);
      expect(v(m, "nsm_active_connections"), name).to.equal(0);
      // No errors anywhere, and never a connection id in a label.
      expect(
        [...m.keys()].filter((k) => k.startsWith("nsm_grpc_server_errors_total")),
        name,
      ).to.deep.equal([]);
      expect(
        [...m.keys()].some((k) => k.includes(conn.id)),
        name,
      ).to.equal(false);
    }
    const res = await fetch(urls.nse.replace(/\/metrics$/, "/other"));
    expect(res.status).to.equal(404);
  });

  it("heal events: SIGKILL of the endpoint shows in the client's nsm_heal_events_total", async () => {
    const { url } = await startRegistry(set);
    const node = await startNode(set, 1, url);
    const first = await startEndpoint(set, "nse-a", node.socket, SERVICE);
    const nsc = set.spawn(
      "cmd-nsc",
      { NSM_NAME: "nsc-1", NSM_CONNECT_TO: node.socket, NSM_NETWORK_SERVICES: `noop://${SERVICE}`, ...METRICS },
      "nsc-1",
    );
    const nscMetrics = await metricsUrl(nsc);
    await nsc.waitFor("connected");
    expect(v(await scrape(nscMetrics), 'nsm_heal_events_total{result="started"}')).to.equal(0);
    await startEndpoint(set, "nse-b", node.socket, SERVICE);
    await first.stop("SIGKILL");
    await nsc.waitFor(
      "connection refreshed",
      (r) => (r.connection as { networkServiceEndpointName: string }).networkServiceEndpointName === "nse-b",
      20_000,
    );
    const m = await scrape(nscMetrics);
    expect(v(m, 'nsm_heal_events_total{result="started"}')).to.be.at.least(1);
    expect(v(m, 'nsm_heal_events_total{result="healed"}')).to.be.at.least(1);
  });

  it("SIGUSR1 switches the log to trace, SIGUSR2 back to NSM_LOG_LEVEL", async () => {
    const { registry, url } = await startRegistry(set, { NSM_LOG_LEVEL: "INFO" });
    const list = async (): Promise<void> => {
      const child = spawn(
        process.execPath,
        [join(repoRoot, "cmd-nsc", "bin", "cmd-nsc.js"), "list", "nse", "--registry", url, "-o", "json"],
        {
          stdio: "ignore",
          env: { ...process.env, NSM_LOG_LEVEL: "ERROR" },
        },
      );
      const [code] = (await once(child, "exit")) as [number | null];
      expect(code).to.equal(0);
    };
    const changed = (n: number): Promise<LogRecord> =>
      registry.waitFor("log level changed", () => registry.records.filter((x) => x.msg === "log level changed").length >= n);
    const traceLines = (): number => registry.records.filter((x) => x.level === 10).length;

    await list();
    registry.child.kill("SIGUSR1");
    expect((await changed(1)).level).to.equal(30);
    expect(traceLines(), "no trace lines before SIGUSR1").to.equal(0);
    await list();
    const received = await registry.waitFor("call received", (x) => x.level === 10);
    expect(received.method).to.equal("/registry.NetworkServiceEndpointRegistry/Find");

    registry.child.kill("SIGUSR2");
    await changed(2);
    const before = traceLines();
    await list();
    // The next SIGUSR1 notice comes after anything the last Find logged (one ordered stdout).
    registry.child.kill("SIGUSR1");
    await changed(3);
    const markers = registry.records.filter((x) => x.msg === "log level changed");
    const between = registry.records.slice(
      registry.records.indexOf(markers[1] as LogRecord),
      registry.records.indexOf(markers[2] as LogRecord),
    );
    expect(
      between.filter((x) => x.level < 30),
      "no trace/debug lines after SIGUSR2",
    ).to.deep.equal([]);
    expect(traceLines()).to.equal(before);
  });
});
