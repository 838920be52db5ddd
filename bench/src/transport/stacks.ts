/**
 * The two stacks the transport bench compares, on the same NSM-sized messages: servers (ours and raw grpc-js,
 * started together, in the bench's child process or in-process) and the client side of each as a `Stack`.
 */
import { create, type Message } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import {
  type Connection,
  ConnectionEventSchema,
  ConnectionSchema,
  MonitorConnection,
  MonitorScopeSelectorSchema,
  NetworkService,
  type NetworkServiceRequest,
  State,
} from "@nsm-ts/api/networkservice";
import { createClient, createServer, dial, grpcServiceDefinition } from "@nsm-ts/base/grpc";

/** Messages per server stream. */
export const STREAM_MESSAGES = 10_000;

/** An NSM-sized Connection: 4 path segments with ~400-byte tokens, kernel mechanism, IP context. */
export function nsmConnection(): Connection {
  const token = `eyJhbGciOiJFUzI1NiJ9.${"x".repeat(300)}.${"s".repeat(86)}`;
  return create(ConnectionSchema, {
    id: "3f2c9a3e-8d4b-4f7e-9a55-1c2d3e4f5a6b",
    networkService: "icmp-responder",
    mechanism: { cls: "LOCAL", type: "KERNEL", parameters: { inodeURL: "file:///proc/4242/ns/net", name: "icmp-resp-Ab3x" } },
    context: {
      ipContext: {
        srcIpAddrs: ["169.254.0.1/32"],
        dstIpAddrs: ["169.254.0.2/32"],
        srcRoutes: [{ prefix: "169.254.0.2/32" }],
        dstRoutes: [{ prefix: "169.254.0.1/32" }],
        excludedPrefixes: ["10.96.0.0/12", "10.244.0.0/16"],
      },
      MTU: 1446,
    },
    labels: { nodeName: "node-1", podName: "nsc-kernel-5d9c8", clusterName: "c1" },
    path: {
      index: 3,
      pathSegments: ["nsc", "nsmgr-1", "forwarder-1", "nse"].map((name, i) => ({
        name,
        id: `3f2c9a3e-8d4b-4f7e-9a55-1c2d3e4f5a6${i}`,
        token,
        expires: timestampFromMs(Date.now() + 600_000),
        metrics: (i === 2 ? { client_interface: "KERNEL/nsm-1", server_interface: "KERNEL/nsm-2" } : {}) as Record<string, string>,
      })),
    },
    networkServiceEndpointName: "nse-icmp-1",
    payload: "IP",
    state: State.UP,
  });
}

const nsDef = grpcServiceDefinition(NetworkService);
const monDef = grpcServiceDefinition(MonitorConnection);

/** Both servers: ours and raw grpc-js, each serving Request/Close and a 10k-message MonitorConnections. */
export async function startServers(): Promise<{ ours: string; raw: string; close(): Promise<void> }> {
  const event = create(ConnectionEventSchema, { type: 1, connections: { c: nsmConnection() } });

  const ours = createServer();
  ours.addService(NetworkService, {
    request: async (req) => req.connection ?? {},
    close: async () => ({}),
  });
  ours.addService(MonitorConnection, {
    async *monitorConnections() {
      for (let i = 0; i < STREAM_MESSAGES; i++) yield event;
    },
  });
  const oursUrl = await ours.listen("tcp://127.0.0.1:0");

  const raw = new grpc.Server();
  raw.addService(nsDef, {
    request: (call: grpc.ServerUnaryCall<NetworkServiceRequest, Connection>, cb: grpc.sendUnaryData<Connection>) =>
      cb(null, call.request.connection ?? create(ConnectionSchema)),
    close: (_call: grpc.ServerUnaryCall<Connection, Message>, cb: grpc.sendUnaryData<Message>) => cb(null, create(ConnectionSchema)),
  });
  raw.addService(monDef, {
    monitorConnections: async (call: grpc.ServerWritableStream<Message, Message>) => {
      for (let i = 0; i < STREAM_MESSAGES; i++) {
        if (!call.write(event)) await new Promise((r) => call.once("drain", r));
      }
      call.end();
    },
  });
  const rawPort = await new Promise<number>((resolve, reject) =>
    raw.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    ours: oursUrl,
    raw: `127.0.0.1:${rawPort}`,
    close: async () => {
      raw.forceShutdown();
      await ours.close({ graceMs: 0 });
    },
  };
}

/** Child process: serve both stacks and report their addresses on IPC. */
export async function serve(): Promise<void> {
  const servers = await startServers();
  process.on("message", (m) => {
    if (m === "cpu") process.send?.({ cpu: process.cpuUsage() });
  });
  process.send?.({ ours: servers.ours, raw: servers.raw });
  process.on("disconnect", () => {
    void servers.close().then(() => process.exit(0));
  });
}

/** One stack as the bench drives it. */
export interface Stack {
  name: string;
  unary(req: NetworkServiceRequest): Promise<unknown>;
  stream(): Promise<number>;
  close(): void;
}

/** Our typed layer's clients on one channel to `url`. */
export function ourStack(url: string): Stack {
  const channel = dial(url);
  const ns = createClient(NetworkService, channel);
  const mon = createClient(MonitorConnection, channel);
  return {
    name: "ours",
    unary: (req) => ns.request(req),
    async stream() {
      let n = 0;
      for await (const _ of mon.monitorConnections({})) n++;
      return n;
    },
    close: () => channel.close(),
  };
}

/** Raw grpc-js calls with the same protobuf-es serialisers, to `target` (host:port). */
export function rawStack(target: string): Stack {
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  const req = nsDef.request as grpc.MethodDefinition<Message, Message>;
  const mon = monDef.monitorConnections as grpc.MethodDefinition<Message, Message>;
  const selector = create(MonitorScopeSelectorSchema);
  return {
    name: "raw grpc-js",
    unary: (r) =>
      new Promise((resolve, reject) =>
        client.makeUnaryRequest(req.path, req.requestSerialize, req.responseDeserialize, r, (err, res) =>
          err ? reject(err) : resolve(res),
        ),
      ),
    stream: () =>
      new Promise((resolve, reject) => {
        let n = 0;
        const s = client.makeServerStreamRequest(mon.path, mon.requestSerialize, mon.responseDeserialize, selector);
        s.on("data", () => n++);
        s.on("error", reject);
        s.on("end", () => resolve(n));
      }),
    close: () => client.close(),
  };
}
