/**
 * One raw gRPC hop as a process, the baseline the mesh is measured against:
 * `node bench/dist/relay.js <kind> <listenUrl> [nextUrl]` serves NetworkService/Request on `listenUrl`, passes the
 * request on to `nextUrl` (the last relay answers with the request's connection) and prints "ready". Kinds, from
 * the most to the least work per call:
 * - `typed`: our typed layer (`createServer`/`createClient`), decoding and encoding the protobuf message;
 * - `grpc`: grpc-js alone, the message passed on as bytes (no decoding);
 * - `http2`: bare `node:http2` with gRPC's framing passed on unchanged (no grpc-js): what any gRPC stack in Node
 *   pays at least for a hop.
 * The bench that starts relays reads their CPU time from /proc.
 */
import { once } from "node:events";
import http2 from "node:http2";
import { connect } from "node:net";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  type Connection,
  ConnectionSchema,
  NetworkService,
  type NetworkServiceRequest,
  NetworkServiceRequestSchema,
} from "@nsm-ts/api/networkservice";
import { createClient, createServer, dial, NO_CHANNELZ, parseUrl } from "@nsm-ts/base/grpc";
import { bytes, REQUEST_PATH } from "./lib/relays.js";

const [kind, listenUrl, nextUrl] = process.argv.slice(2) as [string, string, string | undefined];

async function typed(): Promise<() => Promise<void>> {
  const server = createServer();
  const next = nextUrl ? createClient(NetworkService, dial(nextUrl)) : undefined;
  server.addService(NetworkService, {
    request: async (req: NetworkServiceRequest) => (next ? next.request(req) : (req.connection as Connection)),
    close: async () => ({}),
  });
  await server.listen(listenUrl);
  return () => server.close();
}

async function rawGrpc(): Promise<() => Promise<void>> {
  const server = new grpc.Server(NO_CHANNELZ);
  const next = nextUrl ? new grpc.Client(parseUrl(nextUrl).grpcTarget, grpc.credentials.createInsecure(), NO_CHANNELZ) : undefined;
  // The last relay answers with the request's connection, as the typed one does: field 1 of the request.
  const answer = (b: Buffer): Buffer => Buffer.from(toBinary(ConnectionSchema, lastConnection(b)));
  const method = { path: REQUEST_PATH, requestStream: false, responseStream: false };
  server.addService(
    { request: { ...method, requestSerialize: bytes, requestDeserialize: bytes, responseSerialize: bytes, responseDeserialize: bytes } },
    {
      request: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        if (next === undefined) return cb(null, answer(call.request));
        next.makeUnaryRequest(REQUEST_PATH, bytes, bytes, call.request, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, cb);
      },
    },
  );
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(parseUrl(listenUrl).grpcTarget, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  return () => new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
}

/** The request's connection (decoded only at the last relay, which has to answer with it). */
function lastConnection(b: Buffer): Connection {
  const req = fromBinary(NetworkServiceRequestSchema, b);
  if (req.connection === undefined) throw new Error("request without connection");
  return req.connection;
}

/** Where a unix or tcp URL listens, in node:net terms. */
function netAddress(url: string): { path: string } | { host: string; port: number } {
  const p = parseUrl(url);
  return p.scheme === "unix" ? { path: p.path ?? "" } : { host: p.host || "127.0.0.1", port: p.port ?? 0 };
}

async function bareHttp2(): Promise<() => Promise<void>> {
  let session: http2.ClientHttp2Session | undefined;
  const forward = (body: Buffer): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      if (session === undefined || session.destroyed) {
        const to = netAddress(nextUrl as string);
        session = http2.connect("http://relay", { createConnection: () => connect(to) });
      }
      const s = session.request({ ":method": "POST", ":path": REQUEST_PATH, "content-type": "application/grpc", te: "trailers" });
      const chunks: Buffer[] = [];
      s.on("data", (c: Buffer) => chunks.push(c));
      s.on("end", () => resolve(Buffer.concat(chunks)));
      s.on("error", reject);
      s.end(body);
    });
  // gRPC's length-prefixed message: 1 byte compressed flag, 4 bytes big-endian length, the message.
  const frame = (m: Buffer): Buffer => {
    const h = Buffer.alloc(5);
    h.writeUInt32BE(m.length, 1);
    return Buffer.concat([h, m]);
  };
  const server = http2.createServer();
  server.on("stream", (stream) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", async () => {
      const body = Buffer.concat(chunks);
      const out = nextUrl ? await forward(body) : frame(Buffer.from(toBinary(ConnectionSchema, lastConnection(body.subarray(5)))));
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(out);
    });
  });
  const addr = netAddress(listenUrl);
  await new Promise<void>((resolve) => ("path" in addr ? server.listen(addr.path, resolve) : server.listen(addr.port, addr.host, resolve)));
  return () =>
    new Promise<void>((resolve) => {
      session?.close();
      server.close(() => resolve());
    });
}

const start = { typed, grpc: rawGrpc, http2: bareHttp2 }[kind];
if (start === undefined) throw new Error(`relay kind must be typed, grpc or http2, not ${kind}`);
const close = await start();
process.stdout.write("ready\n");
await once(process, "SIGTERM");
await close();
process.exit(0);
