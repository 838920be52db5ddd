/**
 * Prometheus metrics for nsm-ts programs (prom-client, one Registry per program, never the global one):
 * per-RPC counters and latency histograms from server and client interceptors, active connections and
 * refreshes derived from NetworkService Request/Close traffic, gauges the program feeds (registry entries,
 * data-plane interfaces), and a `/metrics` HTTP endpoint. Labels are bounded: method paths come from the
 * served/dialed services and codes from the gRPC status set; connection ids never become labels.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { realTimersPending } from "../clock/index.js";
import type { ClientInterceptor, ServerInterceptor } from "../grpc/index.js";
import { Code, StatusError } from "../status/index.js";

/** A gauge's value at scrape time: one number, or numbers by label set. */
export type GaugeValue = number | ReadonlyArray<readonly [Record<string, string>, number]>;

/** Options of `createMetrics`. */
export interface MetricsOptions {
  /** Program name, the `program` label of every series (bounded: one value per process). */
  program: string;
  /** Also collect Node's process metrics (CPU, memory, event loop); default true. */
  processMetrics?: boolean;
}

/** The metrics of one program. */
export interface Metrics {
  /** The program's own registry. */
  readonly registry: Registry;
  /** Counts and times every served call; tracks NetworkService connections and refreshes. */
  readonly serverInterceptor: ServerInterceptor;
  /** Counts and times every call this program makes. */
  readonly clientInterceptor: ClientInterceptor;
  /** Heal events (a client chain re-requesting after its next hop failed); `inc()` from a heal hook. */
  readonly heals: Counter<"result">;
  /**
   * Adds a gauge read at scrape time (registry entries, watchers, data-plane interfaces); `collect` returns
   * the value or values by label.
   */
  gauge(name: string, help: string, collect: () => GaugeValue | Promise<GaugeValue>, labelNames?: readonly string[]): void;
  /**
   * Reads `nsm_active_connections` from `source` (the number of connections the program's chain holds, e.g. its
   * connection monitor's size) instead of deriving it from Request/Close traffic, so a connection that the hop's
   * own timeout closed (no Close passes the interceptor) leaves the count at once.
   */
  countConnections(source: () => number): void;
  /** Serves `/metrics` on `tcp://host:port` (port 0 picks one); resolves with the bound `tcp://` URL. */
  listen(url: string): Promise<string>;
  /** Stops the HTTP server (if any). */
  close(): Promise<void>;
}

const NS_REQUEST = "/networkservice.NetworkService/Request";
const NS_CLOSE = "/networkservice.NetworkService/Close";
const codeNames = new Map<number, string>(
  Object.entries(Code)
    .filter(([, v]) => typeof v === "number")
    .map(([k, v]) => [v as number, k]),
);
/** The status name of a call outcome: OK, or the StatusError's code name (Unknown for anything else). */
function codeOf(err: unknown): string {
  if (err === undefined) return "OK";
  return codeNames.get(err instanceof StatusError ? err.code : Code.Unknown) ?? "Unknown";
}

/** Seconds buckets from 1 ms to 30 s: a local Request takes a few ms, a remote one with heal seconds. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

interface ConnLike {
  id?: string;
  path?: { index?: number; pathSegments?: { id?: string; expires?: { seconds?: bigint } }[] };
}

/**
 * The key of a connection as the caller sees it: the id of the caller's path segment (stable for the
 * connection's life, carried by every Request and Close), else the connection id.
 */
function callerKey(conn: ConnLike | undefined): string | undefined {
  return conn?.path?.pathSegments?.[conn.path.index ?? 0]?.id || conn?.id || undefined;
}

/** Creates a program's metrics. */
export function createMetrics(opts: MetricsOptions): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ program: opts.program });
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: "nsm_" });

  const serverStarted = new Counter({
    name: "nsm_grpc_server_started_total",
    help: "RPCs started on this server",
    labelNames: ["method"],
    registers: [registry],
  });
  const serverHandled = new Counter({
    name: "nsm_grpc_server_handled_total",
    help: "RPCs completed on this server, by status code",
    labelNames: ["method", "code"],
    registers: [registry],
  });
  const serverErrors = new Counter({
    name: "nsm_grpc_server_errors_total",
    help: "RPCs on this server that ended with a status other than OK",
    labelNames: ["method", "code"],
    registers: [registry],
  });
  const serverLatency = new Histogram({
    name: "nsm_grpc_server_handling_seconds",
    help: "Time from receiving an RPC to its status",
    labelNames: ["method"],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const serverStreams = new Gauge({
    name: "nsm_grpc_server_streams_active",
    help: "Response streams open on this server (monitors, registry watchers)",
    labelNames: ["method"],
    registers: [registry],
  });
  const clientHandled = new Counter({
    name: "nsm_grpc_client_handled_total",
    help: "RPCs this program made, by status code",
    labelNames: ["method", "code"],
    registers: [registry],
  });
  const clientErrors = new Counter({
    name: "nsm_grpc_client_errors_total",
    help: "RPCs this program made that ended with a status other than OK",
    labelNames: ["method", "code"],
    registers: [registry],
  });
  const clientLatency = new Histogram({
    name: "nsm_grpc_client_handling_seconds",
    help: "Time from sending an RPC to its status",
    labelNames: ["method"],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const requests = new Counter({
    name: "nsm_connection_requests_total",
    help: "NetworkService Requests served, by status code",
    labelNames: ["code"],
    registers: [registry],
  });
  const closes = new Counter({
    name: "nsm_connection_closes_total",
    help: "NetworkService Closes served, by status code",
    labelNames: ["code"],
    registers: [registry],
  });
  const refreshes = new Counter({
    name: "nsm_connection_refreshes_total",
    help: "Successful Requests for a connection this server already had (refresh or heal re-request)",
    registers: [registry],
  });
  const watchers = new Gauge({
    name: "nsm_registry_watchers",
    help: "Open registry Find streams with watch=true, by service",
    labelNames: ["service"],
    registers: [registry],
  });
  const heals = new Counter({
    name: "nsm_heal_events_total",
    help: "Heal events of client chains, by result",
    labelNames: ["result"],
    registers: [registry],
  });

  new Gauge({
    name: "nsm_clock_timers_pending",
    help: "Timers of the real clock set and not yet fired or stopped (refresh, expiry, heal backoff): a leak shows as growth",
    registers: [registry],
    collect() {
      this.set(realTimersPending());
    },
  });

  // Live connections by id with their expiry (epoch s, 0 = unknown): a connection that times out without a
  // Close leaves the count once its token expires.
  const live = new Map<string, number>();
  let connectionSource: (() => number) | undefined;
  const nowS = (): number => Date.now() / 1000;
  new Gauge({
    name: "nsm_active_connections",
    help: "NetworkService connections established through this server and not closed or expired",
    registers: [registry],
    collect() {
      const now = nowS();
      for (const [id, exp] of live) if (exp !== 0 && exp < now) live.delete(id);
      this.set(connectionSource ? connectionSource() : live.size);
    },
  });

  const track = (path: string, request: unknown, res: unknown, err: unknown): void => {
    if (path === NS_REQUEST) {
      requests.inc({ code: codeOf(err) });
      if (err !== undefined) return;
      // Keyed by the id the caller uses (its Request and Close carry it), whatever id this hop gave the connection.
      const conn = res as ConnLike | undefined;
      const id = callerKey((request as { connection?: ConnLike } | undefined)?.connection) ?? callerKey(conn);
      if (!id) return;
      if (live.has(id)) refreshes.inc();
      const seg = conn?.path?.pathSegments?.[conn.path.index ?? 0];
      live.set(id, seg?.expires?.seconds !== undefined ? Number(seg.expires.seconds) : 0);
    } else if (path === NS_CLOSE) {
      closes.inc({ code: codeOf(err) });
      // Hops differ in which index a Close carries; any id of this connection's path names it.
      const c = request as ConnLike | undefined;
      if (c?.id) live.delete(c.id);
      for (const seg of c?.path?.pathSegments ?? []) if (seg.id) live.delete(seg.id);
    }
  };

  const serverInterceptor: ServerInterceptor = (next) => async (call) => {
    const method = call.path;
    serverStarted.inc({ method });
    const streaming = call.method.methodKind === "server_streaming" || call.method.methodKind === "bidi_streaming";
    if (streaming) serverStreams.inc({ method });
    // Registry watchers: "/registry.NetworkServiceEndpointRegistry/Find" with watch=true.
    const watchService =
      method.endsWith("Registry/Find") && (call.request as { watch?: boolean } | undefined)?.watch === true
        ? method.split("/")[1]
        : undefined;
    if (watchService) watchers.inc({ service: watchService });
    const end = serverLatency.startTimer({ method });
    let err: unknown;
    let res: unknown;
    try {
      res = await next(call);
      return res as Awaited<ReturnType<typeof next>>;
    } catch (e) {
      err = e ?? new Error("undefined rejection");
      throw e;
    } finally {
      if (streaming) serverStreams.dec({ method });
      if (watchService) watchers.dec({ service: watchService });
      else end();
      const code = codeOf(err);
      serverHandled.inc({ method, code });
      if (err !== undefined) serverErrors.inc({ method, code });
      track(method, call.request, res, err);
    }
  };

  const clientInterceptor: ClientInterceptor = (next) => async (call) => {
    const method = call.path;
    const streaming = call.method.methodKind === "server_streaming" || call.method.methodKind === "bidi_streaming";
    const end = streaming ? undefined : clientLatency.startTimer({ method });
    let err: unknown;
    try {
      return await next(call);
    } catch (e) {
      err = e ?? new Error("undefined rejection");
      throw e;
    } finally {
      end?.();
      const code = codeOf(err);
      clientHandled.inc({ method, code });
      if (err !== undefined) clientErrors.inc({ method, code });
    }
  };

  let http: Server | undefined;
  return {
    registry,
    serverInterceptor,
    clientInterceptor,
    heals,
    countConnections(source) {
      connectionSource = source;
    },
    gauge(name, help, collect, labelNames = []) {
      new Gauge({
        name,
        help,
        labelNames: [...labelNames],
        registers: [registry],
        async collect() {
          const v = await collect();
          if (typeof v === "number") {
            this.set(v);
            return;
          }
          this.reset();
          for (const [labels, n] of v) this.set(labels, n);
        },
      });
    },
    async listen(url) {
      const m = /^tcp:\/\/(\[[^\]]*\]|[^:/]*):(\d+)\/?$/.exec(url);
      if (!m) throw new TypeError(`metrics: expected tcp://host:port, got ${JSON.stringify(url)}`);
      const host = (m[1] ?? "").replace(/^\[|\]$/g, "") || "0.0.0.0";
      const server = createHttpServer((req, res) => {
        if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
          res.writeHead(404).end();
          return;
        }
        registry.metrics().then(
          (body) => res.writeHead(200, { "content-type": registry.contentType }).end(body),
          (e: unknown) => res.writeHead(500).end(String(e)),
        );
      });
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(Number(m[2]), host, () => resolve());
      });
      http = server;
      const a = server.address() as AddressInfo;
      return `tcp://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`;
    },
    async close() {
      const s = http;
      http = undefined;
      if (!s) return;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}
