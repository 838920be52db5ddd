/**
 * Raw gRPC for the hostile-input suite: a grpc-js client with identity (de)serializers, so a call sends exactly the
 * bytes it is given and never decodes the answer; a bounded-concurrency runner; per-kind tallies of status codes;
 * a process's RSS from /proc.
 */
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";

const identity = (b: Buffer): Buffer => b;

/** Full paths of the methods the programs serve. */
export const M = {
  nsRegister: "/registry.NetworkServiceRegistry/Register",
  nsFind: "/registry.NetworkServiceRegistry/Find",
  nsUnregister: "/registry.NetworkServiceRegistry/Unregister",
  nseRegister: "/registry.NetworkServiceEndpointRegistry/Register",
  nseFind: "/registry.NetworkServiceEndpointRegistry/Find",
  nseUnregister: "/registry.NetworkServiceEndpointRegistry/Unregister",
  request: "/networkservice.NetworkService/Request",
  close: "/networkservice.NetworkService/Close",
  monitor: "/connection.MonitorConnection/MonitorConnections",
  check: "/grpc.health.v1.Health/Check",
  watch: "/grpc.health.v1.Health/Watch",
} as const;
/** The server-streaming ones. */
export const STREAMS = new Set<string>([M.nsFind, M.nseFind, M.monitor, M.watch]);

/** `tcp://host:port` → `host:port`; `unix:///path` stays (grpc-js reads it). */
export function grpcTarget(url: string): string {
  return url.startsWith("tcp://") ? url.slice("tcp://".length) : url;
}

/**
 * A raw client that opens a fresh channel (own subchannel pool, so a new connection) every `churn` calls and closes
 * a retired channel once its last call has ended.
 */
export class ChurningClient {
  private current: { client: grpc.Client; calls: number; inFlight: number } | undefined;

  /** `credentials` makes each new channel's credentials (default plaintext); a fresh object per channel. */
  constructor(
    readonly target: string,
    private readonly churn: number,
    private readonly credentials: () => grpc.ChannelCredentials = () => grpc.credentials.createInsecure(),
  ) {}

  /** Runs `fn` on the current channel (opening a new one every `churn` calls). */
  async use<T>(fn: (c: grpc.Client) => Promise<T>): Promise<T> {
    if (!this.current || this.current.calls >= this.churn) {
      this.retire();
      this.current = {
        client: new grpc.Client(grpcTarget(this.target), this.credentials(), {
          "grpc.use_local_subchannel_pool": 1,
          // Workload certificates name no host; without this grpc-js sends the IP of a tcp target as TLS server name.
          "grpc.ssl_target_name_override": "localhost",
          "grpc.max_send_message_length": 64 * 1024 * 1024,
          "grpc.max_receive_message_length": 64 * 1024 * 1024,
        }),
        calls: 0,
        inFlight: 0,
      };
    }
    const ch = this.current;
    ch.calls++;
    ch.inFlight++;
    try {
      return await fn(ch.client);
    } finally {
      ch.inFlight--;
      if (ch !== this.current && ch.inFlight === 0) ch.client.close();
    }
  }

  private retire(): void {
    if (this.current && this.current.inFlight === 0) this.current.client.close();
    this.current = undefined;
  }

  /** Closes the current channel (call when no call is in flight). */
  close(): void {
    this.current?.client.close();
    this.current = undefined;
  }
}

/** How a raw call is made. */
export interface RawCall {
  /** Full method path, `/package.Service/Method`. */
  path: string;
  /** Server-streaming (Find, MonitorConnections, Watch) or unary. */
  stream: boolean;
  /** The request bytes, sent as they are. */
  bytes: Uint8Array;
  /** Request metadata (e.g. a forged `nsm-client-token`). */
  metadata?: Record<string, string>;
  /** Deadline; default 5 s. */
  deadlineMs?: number;
  /** Streams only: cancel this long after the call starts (0: at once); default: read to the end or the deadline. */
  cancelAfterMs?: number;
}

/** The status code a raw call ends with (never throws). */
export async function rawCall(client: grpc.Client, c: RawCall): Promise<grpc.status> {
  return (await rawCallStatus(client, c)).code;
}

/** The status (code and details) a raw call ends with (never throws). */
export function rawCallStatus(client: grpc.Client, c: RawCall): Promise<{ code: grpc.status; details: string }> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(c.metadata ?? {})) md.set(k, v);
  const deadline = Date.now() + (c.deadlineMs ?? 5_000);
  const buf = Buffer.from(c.bytes.buffer, c.bytes.byteOffset, c.bytes.byteLength);
  return new Promise((resolve) => {
    if (!c.stream) {
      client.makeUnaryRequest(c.path, identity, identity, buf, md, { deadline }, (err) => {
        const e = err as grpc.ServiceError | null;
        resolve(e ? { code: e.code ?? grpc.status.UNKNOWN, details: e.details ?? e.message } : { code: grpc.status.OK, details: "" });
      });
      return;
    }
    const call = client.makeServerStreamRequest(c.path, identity, identity, buf, md, { deadline });
    call.on("data", () => undefined);
    call.on("error", () => undefined);
    call.on("status", (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details }));
    if (c.cancelAfterMs !== undefined) {
      if (c.cancelAfterMs === 0) call.cancel();
      else setTimeout(() => call.cancel(), c.cancelAfterMs).unref();
    }
  });
}

/** Runs `tasks` with at most `limit` in flight. */
export async function bounded<T>(tasks: Iterable<() => Promise<T>>, limit: number): Promise<void> {
  const it = tasks[Symbol.iterator]();
  const worker = async (): Promise<void> => {
    for (let n = it.next(); !n.done; n = it.next()) await n.value();
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

/** Status codes seen per kind of hostile call. */
export class Tally {
  readonly kinds = new Map<string, Map<grpc.status, number>>();
  /** The first status details seen per kind and code (`kind code` → details). */
  readonly samples = new Map<string, string>();

  add(kind: string, code: grpc.status, details?: string): void {
    let m = this.kinds.get(kind);
    if (!m) {
      m = new Map();
      this.kinds.set(kind, m);
    }
    m.set(code, (m.get(code) ?? 0) + 1);
    const key = `${kind} ${codeName(code)}`;
    if (details !== undefined && !this.samples.has(key)) this.samples.set(key, details);
  }

  /** Calls of one kind, or of all. */
  calls(kind?: string): number {
    let n = 0;
    for (const [k, m] of this.kinds) if (kind === undefined || k === kind) for (const v of m.values()) n += v;
    return n;
  }

  /** Codes of `kind`, by name. */
  codes(kind: string): string[] {
    return [...(this.kinds.get(kind)?.keys() ?? [])].map(codeName);
  }

  /** One line per kind: `kind: N calls, CODE×n …`. */
  lines(): string[] {
    return [...this.kinds].map(([k, m]) => {
      const codes = [...m].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${codeName(c)}×${n}`);
      return `${k}: ${this.calls(k)} calls, ${codes.join(" ")}`;
    });
  }
}

/** `grpc.status` name of a code. */
export function codeName(c: grpc.status): string {
  return grpc.status[c] ?? String(c);
}

/** VmRSS of `pid` in MiB (NaN when the process is gone). */
export function rssMiB(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** User + system CPU time `pid` has used so far, in seconds (NaN when the process is gone). */
export function cpuSeconds(pid: number | undefined): number {
  try {
    // Fields after the command name (which may hold spaces): state is the 3rd field, utime/stime the 14th/15th.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

export { grpc };
