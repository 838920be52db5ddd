import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { IPAM, PrefixRequestSchema, PrefixResponseSchema } from "@nsm-ts/api/ipam";
import {
  ConnectionEventSchema,
  ConnectionSchema,
  MonitorConnection,
  MonitorScopeSelectorSchema,
  NetworkService,
  NetworkServiceRequestSchema,
} from "@nsm-ts/api/networkservice";
import {
  NetworkServiceEndpointQuerySchema,
  NetworkServiceEndpointRegistry,
  NetworkServiceEndpointResponseSchema,
  NetworkServiceEndpointSchema,
  NetworkServiceQuerySchema,
  NetworkServiceRegistry,
  NetworkServiceResponseSchema,
  NetworkServiceSchema,
} from "@nsm-ts/api/registry";
import * as fx from "@nsm-ts/testing/grpc";
import { expect } from "chai";
import { type Channel, createClient, createServer, dial, type NsmServer } from "./index.js";

/** The repo root, found from the compiled test file so the test runs from any working directory. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "api", "proto", "networkservice"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("interop test: api/proto not found above the test file");
    dir = up;
  }
  return dir;
}

type PlainClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;
type PlainCtor = new (target: string, creds: grpc.ChannelCredentials) => PlainClient;
interface Loaded {
  ns: PlainCtor & { service: grpc.ServiceDefinition };
  monitor: PlainCtor & { service: grpc.ServiceDefinition };
  nsReg: PlainCtor & { service: grpc.ServiceDefinition };
  nseReg: PlainCtor & { service: grpc.ServiceDefinition };
  ipam: PlainCtor & { service: grpc.ServiceDefinition };
}

/** Loads our .proto files with proto-loader: an independent parser and codec (protobufjs). */
function loadProtos(): Loaded {
  const root = join(repoRoot(), "api", "proto");
  const def = protoLoader.loadSync(
    ["networkservice.proto", "connection.proto", "connectioncontext.proto", "registry.proto", "ipam.proto"],
    {
      includeDirs: [join(root, "networkservice"), join(root, "registry"), join(root, "ipam")],
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
    },
  );
  const pkg = grpc.loadPackageDefinition(def) as unknown as Record<string, Record<string, Loaded["ns"]>>;
  const get = (p: string, s: string): Loaded["ns"] =>
    pkg[p]?.[s] ??
    (() => {
      throw new Error(`${p}.${s} not loaded`);
    })();
  return {
    ns: get("networkservice", "NetworkService"),
    monitor: get("connection", "MonitorConnection"),
    nsReg: get("registry", "NetworkServiceRegistry"),
    nseReg: get("registry", "NetworkServiceEndpointRegistry"),
    ipam: get("ipam", "IPAM"),
  };
}

const json = <D extends DescMessage>(schema: D, m: MessageShape<D>): unknown => toJson(schema, m);

/** Our server: all 10 methods, recording what arrived and answering with the full fixtures. */
function ourServer(received: Array<[string, unknown]>): NsmServer {
  const server = createServer();
  server.addService(NetworkService, {
    async request(req) {
      received.push(["Request", json(NetworkServiceRequestSchema, req)]);
      return fx.fullConnection;
    },
    async close(conn) {
      received.push(["Close", json(ConnectionSchema, conn)]);
      return {};
    },
  });
  server.addService(MonitorConnection, {
    async *monitorConnections(sel) {
      received.push(["MonitorConnections", json(MonitorScopeSelectorSchema, sel)]);
      yield fx.fullEvent;
      yield fx.fullEvent;
    },
  });
  server.addService(NetworkServiceRegistry, {
    async register(ns) {
      received.push(["NS.Register", json(NetworkServiceSchema, ns)]);
      return ns;
    },
    async *find(q) {
      received.push(["NS.Find", json(NetworkServiceQuerySchema, q)]);
      yield fx.nsResponse;
    },
    async unregister(ns) {
      received.push(["NS.Unregister", json(NetworkServiceSchema, ns)]);
      return {};
    },
  });
  server.addService(NetworkServiceEndpointRegistry, {
    async register(nse) {
      received.push(["NSE.Register", json(NetworkServiceEndpointSchema, nse)]);
      return nse;
    },
    async *find(q) {
      received.push(["NSE.Find", json(NetworkServiceEndpointQuerySchema, q)]);
      yield fx.nseResponse;
    },
    async unregister(nse) {
      received.push(["NSE.Unregister", json(NetworkServiceEndpointSchema, nse)]);
      return {};
    },
  });
  server.addService(IPAM, {
    async *managePrefixes(reqs) {
      for await (const r of reqs) {
        received.push(["ManagePrefixes", json(PrefixRequestSchema, r)]);
        yield fx.prefixResponseFor(r.prefix, r.excludePrefixes);
      }
    },
  });
  return server;
}

const unary = (c: PlainClient, m: string, req: unknown): Promise<unknown> =>
  new Promise((resolve, reject) => {
    c[m]?.(req, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)));
  });

const collect = (stream: grpc.ClientReadableStream<unknown>): Promise<unknown[]> =>
  new Promise((resolve, reject) => {
    const out: unknown[] = [];
    stream.on("data", (d) => out.push(d));
    stream.on("error", reject);
    stream.on("end", () => resolve(out));
  });

async function collectAll<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("grpc interop with @grpc/grpc-js + @grpc/proto-loader", () => {
  const loaded = loadProtos();
  let dir: string;
  const closers: Array<() => Promise<void> | void> = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "nsm-grpc-interop-"));
  });
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
    rmSync(dir, { recursive: true, force: true });
  });

  it("uses fixtures in which every field is set", () => {
    expect(fx.unsetFields(ConnectionSchema, fx.fullConnection)).to.deep.equal([]);
    expect(fx.unsetFields(NetworkServiceEndpointSchema, fx.fullEndpoint)).to.deep.equal([]);
    expect(fx.unsetFields(ConnectionEventSchema, fx.fullEvent)).to.deep.equal([]);
    expect(fx.unsetFields(NetworkServiceRequestSchema, fx.fullRequest)).to.deep.equal([]);
    expect(fx.unsetFields(NetworkServiceSchema, fx.fullService)).to.deep.equal([]);
    expect(fx.unsetFields(MonitorScopeSelectorSchema, fx.fullSelector)).to.deep.equal([]);
  });

  for (const transport of ["tcp", "unix"] as const) {
    const listenUrl = (): string => (transport === "tcp" ? "tcp://127.0.0.1:0" : `unix://${join(dir, "nsm.sock")}`);
    const target = (url: string): string => (transport === "tcp" ? url.slice("tcp://".length) : url);

    it(`serves all 10 methods to a proto-loader client over ${transport}`, async () => {
      const received: Array<[string, unknown]> = [];
      const server = ourServer(received);
      closers.push(() => server.close());
      const url = await server.listen(listenUrl());
      const creds = grpc.credentials.createInsecure();
      const mk = (C: PlainCtor): PlainClient => {
        const c = new C(target(url), creds);
        // Not c.close(): proto-loader clients get a lower-case alias per method, and NetworkService has Close.
        closers.push(() => grpc.Client.prototype.close.call(c));
        return c;
      };
      const ns = mk(loaded.ns);
      const monitor = mk(loaded.monitor);
      const nsReg = mk(loaded.nsReg);
      const nseReg = mk(loaded.nseReg);
      const ipam = mk(loaded.ipam);

      expect(await unary(ns, "Request", fx.fullRequestPlain)).to.deep.equal(fx.fullConnectionPlain);
      expect(await unary(ns, "Close", fx.fullConnectionPlain)).to.deep.equal({});
      const events = await collect(monitor.MonitorConnections?.(fx.fullSelectorPlain) as grpc.ClientReadableStream<unknown>);
      expect(events).to.deep.equal([fx.fullEventPlain, fx.fullEventPlain]);
      expect(await unary(nsReg, "Register", fx.fullServicePlain)).to.deep.equal(fx.fullServicePlain);
      expect(await collect(nsReg.Find?.(fx.nsQueryPlain) as grpc.ClientReadableStream<unknown>)).to.deep.equal([fx.nsResponsePlain]);
      expect(await unary(nsReg, "Unregister", fx.fullServicePlain)).to.deep.equal({});
      expect(await unary(nseReg, "Register", fx.fullEndpointPlain)).to.deep.equal(fx.fullEndpointPlain);
      expect(await collect(nseReg.Find?.(fx.nseQueryPlain) as grpc.ClientReadableStream<unknown>)).to.deep.equal([fx.nseResponsePlain]);
      expect(await unary(nseReg, "Unregister", fx.fullEndpointPlain)).to.deep.equal({});
      const bidi = ipam.ManagePrefixes?.() as grpc.ClientDuplexStream<unknown, unknown>;
      const responses = collect(bidi);
      for (const r of fx.prefixRequestsPlain) bidi.write(r);
      bidi.end();
      expect(await responses).to.deep.equal(
        fx.prefixRequestsPlain.map((r) => ({
          prefix: r.prefix,
          exclude_prefixes: [...(r.exclude_prefixes as string[]), "198.51.100.0/24"],
        })),
      );

      expect(received).to.deep.equal([
        ["Request", json(NetworkServiceRequestSchema, fx.fullRequest)],
        ["Close", json(ConnectionSchema, fx.fullConnection)],
        ["MonitorConnections", json(MonitorScopeSelectorSchema, fx.fullSelector)],
        ["NS.Register", json(NetworkServiceSchema, fx.fullService)],
        ["NS.Find", json(NetworkServiceQuerySchema, fx.nsQuery)],
        ["NS.Unregister", json(NetworkServiceSchema, fx.fullService)],
        ["NSE.Register", json(NetworkServiceEndpointSchema, fx.fullEndpoint)],
        ["NSE.Find", json(NetworkServiceEndpointQuerySchema, fx.nseQuery)],
        ["NSE.Unregister", json(NetworkServiceEndpointSchema, fx.fullEndpoint)],
        ...fx.prefixRequests.map((r) => ["ManagePrefixes", json(PrefixRequestSchema, r)]),
      ]);
    });

    it(`calls all 10 methods of a proto-loader server over ${transport}`, async () => {
      const received: Array<[string, unknown]> = [];
      const server = new grpc.Server();
      const unaryH =
        (name: string, reply: (req: unknown) => unknown) =>
        (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
          received.push([name, call.request]);
          cb(null, reply(call.request));
        };
      const streamH = (name: string, replies: unknown[]) => (call: grpc.ServerWritableStream<unknown, unknown>) => {
        received.push([name, call.request]);
        for (const r of replies) call.write(r);
        call.end();
      };
      server.addService(loaded.ns.service, {
        Request: unaryH("Request", () => fx.fullConnectionPlain),
        Close: unaryH("Close", () => ({})),
      });
      server.addService(loaded.monitor.service, {
        MonitorConnections: streamH("MonitorConnections", [fx.fullEventPlain, fx.fullEventPlain]),
      });
      server.addService(loaded.nsReg.service, {
        Register: unaryH("NS.Register", (r) => r),
        Find: streamH("NS.Find", [fx.nsResponsePlain]),
        Unregister: unaryH("NS.Unregister", () => ({})),
      });
      server.addService(loaded.nseReg.service, {
        Register: unaryH("NSE.Register", (r) => r),
        Find: streamH("NSE.Find", [fx.nseResponsePlain]),
        Unregister: unaryH("NSE.Unregister", () => ({})),
      });
      server.addService(loaded.ipam.service, {
        ManagePrefixes: (call: grpc.ServerDuplexStream<{ prefix: string; exclude_prefixes: string[] }, unknown>) => {
          call.on("data", (r: { prefix: string; exclude_prefixes: string[] }) => {
            received.push(["ManagePrefixes", r]);
            call.write({ prefix: r.prefix, exclude_prefixes: [...r.exclude_prefixes, "198.51.100.0/24"] });
          });
          call.on("end", () => call.end());
        },
      });
      const bindTarget = transport === "tcp" ? "127.0.0.1:0" : `unix://${join(dir, "pl.sock")}`;
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync(bindTarget, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
      );
      closers.push(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
      const channel: Channel = dial(transport === "tcp" ? `tcp://127.0.0.1:${port}` : `unix://${join(dir, "pl.sock")}`);
      closers.push(() => channel.close());

      const ns = createClient(NetworkService, channel);
      const monitor = createClient(MonitorConnection, channel);
      const nsReg = createClient(NetworkServiceRegistry, channel);
      const nseReg = createClient(NetworkServiceEndpointRegistry, channel);
      const ipam = createClient(IPAM, channel);

      expect(json(ConnectionSchema, await ns.request(fx.fullRequest))).to.deep.equal(json(ConnectionSchema, fx.fullConnection));
      expect(json(EmptySchema, await ns.close(fx.fullConnection))).to.deep.equal({});
      const events = await collectAll(monitor.monitorConnections(fx.fullSelector));
      expect(events.map((e) => json(ConnectionEventSchema, e))).to.deep.equal([
        json(ConnectionEventSchema, fx.fullEvent),
        json(ConnectionEventSchema, fx.fullEvent),
      ]);
      expect(json(NetworkServiceSchema, await nsReg.register(fx.fullService))).to.deep.equal(json(NetworkServiceSchema, fx.fullService));
      expect((await collectAll(nsReg.find(fx.nsQuery))).map((r) => json(NetworkServiceResponseSchema, r))).to.deep.equal([
        json(NetworkServiceResponseSchema, fx.nsResponse),
      ]);
      await nsReg.unregister(fx.fullService);
      expect(json(NetworkServiceEndpointSchema, await nseReg.register(fx.fullEndpoint))).to.deep.equal(
        json(NetworkServiceEndpointSchema, fx.fullEndpoint),
      );
      expect((await collectAll(nseReg.find(fx.nseQuery))).map((r) => json(NetworkServiceEndpointResponseSchema, r))).to.deep.equal([
        json(NetworkServiceEndpointResponseSchema, fx.nseResponse),
      ]);
      await nseReg.unregister(fx.fullEndpoint);
      async function* reqs() {
        yield* fx.prefixRequests;
      }
      const prefixes = await collectAll(ipam.managePrefixes(reqs()));
      expect(prefixes.map((p) => json(PrefixResponseSchema, p))).to.deep.equal(
        fx.prefixRequests.map((r) => json(PrefixResponseSchema, fx.prefixResponseFor(r.prefix, r.excludePrefixes))),
      );

      expect(received).to.deep.equal([
        ["Request", fx.fullRequestPlain],
        ["Close", fx.fullConnectionPlain],
        ["MonitorConnections", fx.fullSelectorPlain],
        ["NS.Register", fx.fullServicePlain],
        ["NS.Find", fx.nsQueryPlain],
        ["NS.Unregister", fx.fullServicePlain],
        ["NSE.Register", fx.fullEndpointPlain],
        ["NSE.Find", fx.nseQueryPlain],
        ["NSE.Unregister", fx.fullEndpointPlain],
        ...fx.prefixRequestsPlain.map((r) => ["ManagePrefixes", r]),
      ]);
    });
  }
});
