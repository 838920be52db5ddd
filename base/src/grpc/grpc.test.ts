import { Writable } from "node:stream";
import { create, createFileRegistry, type Message, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import {
  file_grpc_health_v1_health,
  Health,
  type HealthCheckRequest,
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus,
} from "@nsm-ts/api/health";
import { IPAM } from "@nsm-ts/api/ipam";
import {
  type Connection,
  ConnectionEventSchema,
  ConnectionSchema,
  MonitorConnection,
  NetworkService,
  NetworkServiceRequestSchema,
} from "@nsm-ts/api/networkservice";
import { expect } from "chai";
import { DEFAULT_MAX_RECV_MESSAGE_BYTES } from "../limits/index.js";
import { createLogger } from "../log/index.js";
import { Code, isStatusError, StatusError } from "../status/index.js";
import {
  type Channel,
  type ClientInterceptor,
  createClient,
  createServer,
  dial,
  grpcServiceDefinition,
  type NsmServer,
  parseUrl,
  type ServerCallContext,
  type ServerInterceptor,
  type ServerOptions,
  type ServiceImpl,
} from "./index.js";

/** A promise with its resolve function, to wait for events instead of sleeping. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const aborted = (signal: AbortSignal): Promise<unknown> =>
  signal.aborted
    ? Promise.resolve(signal.reason)
    : new Promise((r) => signal.addEventListener("abort", () => r(signal.reason), { once: true }));

async function expectStatus(p: Promise<unknown>, code: Code): Promise<StatusError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(StatusError);
    expect((err as StatusError).code, (err as Error).message).to.equal(code);
    return err as StatusError;
  }
  throw new Error(`expected a StatusError with code ${code}, got success`);
}

describe("grpc typed layer", () => {
  const servers: NsmServer[] = [];
  const channels: Channel[] = [];

  afterEach(async () => {
    for (const c of channels.splice(0)) c.close();
    await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 500 })));
  });

  async function start(
    impl: Partial<ServiceImpl<typeof NetworkService>>,
    opts: ServerOptions & {
      monitor?: ServiceImpl<typeof MonitorConnection>;
      ipam?: ServiceImpl<typeof IPAM>;
      clientInterceptors?: ClientInterceptor[];
    } = {},
  ) {
    const server = createServer(opts);
    servers.push(server);
    server.addService(NetworkService, {
      request: async (req) => req.connection ?? {},
      close: async () => ({}),
      ...impl,
    });
    if (opts.monitor) server.addService(MonitorConnection, opts.monitor);
    if (opts.ipam) server.addService(IPAM, opts.ipam);
    const url = await server.listen("tcp://127.0.0.1:0");
    const channel = dial(url, { interceptors: opts.clientInterceptors ?? [] });
    channels.push(channel);
    return {
      server,
      url,
      channel,
      ns: createClient(NetworkService, channel),
      monitor: createClient(MonitorConnection, channel),
      ipam: createClient(IPAM, channel),
      health: createClient(Health, channel),
    };
  }

  describe("receive size", () => {
    it("maxRecvMessageBytes: a larger message is ResourceExhausted before the handler, a smaller one is served, the server keeps serving", async () => {
      let handled = 0;
      const { ns } = await start(
        {
          request: async (req) => {
            handled++;
            return req.connection ?? {};
          },
        },
        { maxRecvMessageBytes: 64 * 1024 },
      );
      const err = await ns.request({ connection: { id: "x".repeat(100 * 1024) } }, { timeoutMs: 5000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isStatusError(err, Code.ResourceExhausted), String(err)).to.equal(true);
      expect(handled).to.equal(0);
      expect((await ns.request({ connection: { id: "x".repeat(10 * 1024) } }, { timeoutMs: 5000 })).id).to.have.length(10 * 1024);
      expect(handled).to.equal(1);
    });

    it("the default is DEFAULT_MAX_RECV_MESSAGE_BYTES (4 MiB)", async () => {
      const { ns } = await start({});
      const err = await ns.request({ connection: { id: "x".repeat(DEFAULT_MAX_RECV_MESSAGE_BYTES + 1) } }, { timeoutMs: 5000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isStatusError(err, Code.ResourceExhausted), String(err)).to.equal(true);
    });
  });

  describe("parseUrl", () => {
    it("maps tcp and unix URLs to grpc-js targets", () => {
      expect(parseUrl("tcp://127.0.0.1:5002")).to.deep.equal({
        scheme: "tcp",
        host: "127.0.0.1",
        port: 5002,
        grpcTarget: "127.0.0.1:5002",
      });
      expect(parseUrl("tcp://:5002")).to.deep.equal({ scheme: "tcp", host: "", port: 5002, grpcTarget: "0.0.0.0:5002" });
      expect(parseUrl("tcp://[::1]:0").grpcTarget).to.equal("[::1]:0");
      expect(parseUrl("tcp://localhost:1")).to.include({ host: "localhost", port: 1 });
      expect(parseUrl("unix:///var/lib/nsm.sock")).to.deep.equal({
        scheme: "unix",
        path: "/var/lib/nsm.sock",
        grpcTarget: "unix:///var/lib/nsm.sock",
      });
    });
    it("rejects anything else with InvalidArgument", () => {
      for (const bad of ["", "127.0.0.1:80", "http://h:1", "tcp://h", "tcp://h:99999", "unix://relative.sock", "tcp://h:1/x"]) {
        expect(() => parseUrl(bad), bad)
          .to.throw(StatusError)
          .with.property("code", Code.InvalidArgument);
      }
    });
  });

  describe("grpcServiceDefinition", () => {
    it("derives paths, streaming flags and protobuf-es serialisers from the descriptor", () => {
      const def = grpcServiceDefinition(MonitorConnection);
      const m = def.monitorConnections;
      expect(m).to.include({
        path: "/connection.MonitorConnection/MonitorConnections",
        requestStream: false,
        responseStream: true,
        originalName: "MonitorConnections",
      });
      const ipam = grpcServiceDefinition(IPAM).managePrefixes;
      expect(ipam).to.include({ path: "/ipam.IPAM/ManagePrefixes", requestStream: true, responseStream: true });
      const conn = create(ConnectionSchema, { id: "x", context: { MTU: 1500 } });
      const req = grpcServiceDefinition(NetworkService).close;
      const bytes = req?.requestSerialize(conn);
      expect(Buffer.compare(bytes as Buffer, Buffer.from(toBinary(ConnectionSchema, conn)))).to.equal(0);
      expect((req?.requestDeserialize(bytes as Buffer) as Connection | undefined)?.context?.MTU).to.equal(1500);
    });
  });

  describe("deadlines and cancellation", () => {
    it("propagates the client deadline to ctx.deadline", async () => {
      const seen = deferred<Date | undefined>();
      const { ns } = await start({
        async request(req, ctx) {
          seen.resolve(ctx.deadline);
          return req.connection ?? {};
        },
      });
      const deadline = new Date(Date.now() + 5000);
      await ns.request({ connection: { id: "a" } }, { deadline });
      const got = await seen.promise;
      expect(got).to.be.instanceOf(Date);
      // grpc-timeout is relative, so the server's copy is late by the transit time: a few ms on an idle
      // machine, more on a loaded CI box; it can never be earlier (beyond ms rounding).
      const skewMs = (got as Date).getTime() - deadline.getTime();
      expect(skewMs).to.be.within(-2, 200);
    });

    it("has no deadline when the client sets none, and timeoutMs works like a relative deadline", async () => {
      const seen: Array<Date | undefined> = [];
      const { ns } = await start({
        async request(req, ctx) {
          seen.push(ctx.deadline);
          return req.connection ?? {};
        },
      });
      await ns.request({});
      const before = Date.now();
      await ns.request({}, { timeoutMs: 3000 });
      expect(seen[0]).to.equal(undefined);
      expect((seen[1] as Date).getTime() - (before + 3000)).to.be.within(-2, 200);
    });

    it("gives the client DeadlineExceeded and aborts the handler when the server outlives the deadline", async () => {
      const reason = deferred<unknown>();
      const { ns } = await start({
        async request(_req, ctx) {
          reason.resolve(await aborted(ctx.signal));
          throw new StatusError(Code.Unavailable, "too late");
        },
      });
      await expectStatus(ns.request({}, { timeoutMs: 50 }), Code.DeadlineExceeded);
      const r = await reason.promise;
      expect(isStatusError(r, Code.DeadlineExceeded), String(r)).to.equal(true);
    });

    it("cancels both sides when the client's signal aborts", async () => {
      const started = deferred();
      const reason = deferred<unknown>();
      const { ns } = await start({
        async request(_req, ctx) {
          started.resolve();
          reason.resolve(await aborted(ctx.signal));
          return {};
        },
      });
      const ac = new AbortController();
      const call = ns.request({}, { signal: ac.signal });
      await started.promise;
      ac.abort();
      await expectStatus(call, Code.Canceled);
      expect(isStatusError(await reason.promise, Code.Canceled)).to.equal(true);
      // An already aborted signal fails fast without a call.
      await expectStatus(ns.request({}, { signal: ac.signal }), Code.Canceled);
    });

    it("cancels a server stream when the consumer breaks: ctx.signal aborts and the generator's finally runs", async () => {
      const returned = deferred();
      const reason = deferred<unknown>();
      const { monitor } = await start(
        {},
        {
          monitor: {
            async *monitorConnections(_sel, ctx) {
              ctx.signal.addEventListener("abort", () => reason.resolve(ctx.signal.reason), { once: true });
              try {
                for (let i = 0; ; i++) yield { type: 1, connections: { [`c${i}`]: { id: `c${i}` } } };
              } finally {
                returned.resolve();
              }
            },
          },
        },
      );
      const got: string[] = [];
      for await (const ev of monitor.monitorConnections({})) {
        got.push(...Object.keys(ev.connections));
        if (got.length === 3) break;
      }
      expect(got).to.deep.equal(["c0", "c1", "c2"]);
      await returned.promise;
      expect(isStatusError(await reason.promise, Code.Canceled)).to.equal(true);
    });

    it("calls return() on a handler blocked in an await when the client's signal aborts", async () => {
      const returned = deferred();
      const { monitor } = await start(
        {},
        {
          monitor: {
            monitorConnections(_sel, ctx) {
              let sent = false;
              // A hand-written iterator, to see return() called while next() is still pending.
              return {
                [Symbol.asyncIterator]() {
                  return {
                    async next(): Promise<IteratorResult<MessageInitShape<typeof ConnectionEventSchema>>> {
                      if (!sent) {
                        sent = true;
                        return { value: { type: 0 }, done: false };
                      }
                      await aborted(ctx.signal);
                      return { value: undefined, done: true };
                    },
                    async return(): Promise<IteratorResult<MessageInitShape<typeof ConnectionEventSchema>>> {
                      returned.resolve();
                      return { value: undefined, done: true };
                    },
                  };
                },
              };
            },
          },
        },
      );
      const ac = new AbortController();
      const it = monitor.monitorConnections({}, { signal: ac.signal })[Symbol.asyncIterator]();
      expect((await it.next()).done).to.equal(false);
      const pending = it.next();
      ac.abort();
      await expectStatus(pending, Code.Canceled);
      await returned.promise;
    });
  });

  describe("metadata, headers and health", () => {
    it("round-trips request metadata and response headers on unary and streaming calls", async () => {
      const seen: Array<Pick<ServerCallContext, "method" | "metadata" | "metadataAll">> = [];
      const { ns, monitor } = await start(
        {
          async request(req, ctx) {
            seen.push({ method: ctx.method, metadata: ctx.metadata, metadataAll: ctx.metadataAll });
            ctx.setHeader("path", '{"Index":1}');
            return req.connection ?? {};
          },
        },
        {
          monitor: {
            async *monitorConnections(_sel, ctx) {
              seen.push({ method: ctx.method, metadata: ctx.metadata, metadataAll: ctx.metadataAll });
              ctx.setHeader("x-stream", "yes");
              yield {};
            },
          },
        },
      );
      const headers: Array<Record<string, string>> = [];
      await ns.request(
        {},
        {
          metadata: { "nsm-client-token": "jwt", "nsm-client-token-expires": "2026-04-07T10:14:14.123456789Z" },
          onHeader: (h) => headers.push(h),
        },
      );
      for await (const _ of monitor.monitorConnections({}, { metadata: { "x-m": "1" }, onHeader: (h) => headers.push(h) })) void _;
      expect(seen[0]?.method).to.equal("/networkservice.NetworkService/Request");
      expect(seen[0]?.metadata).to.include({ "nsm-client-token": "jwt", "nsm-client-token-expires": "2026-04-07T10:14:14.123456789Z" });
      expect(seen[0]?.metadataAll["nsm-client-token"]).to.deep.equal(["jwt"]);
      expect(seen[1]?.method).to.equal("/connection.MonitorConnection/MonitorConnections");
      expect(seen[1]?.metadata).to.include({ "x-m": "1" });
      expect(headers[0]).to.include({ path: '{"Index":1}' });
      expect(headers[1]).to.include({ "x-stream": "yes" });
    });

    it("exposes every value of a repeated metadata key", async () => {
      const seen = deferred<ServerCallContext>();
      const { url } = await start({
        async request(req, ctx) {
          seen.resolve(ctx);
          return req.connection ?? {};
        },
      });
      const raw = new grpc.Client(parseUrl(url).grpcTarget, grpc.credentials.createInsecure());
      const md = new grpc.Metadata();
      md.add("nsm-client-token", "a");
      md.add("nsm-client-token", "b");
      const def = grpcServiceDefinition(NetworkService).request as grpc.MethodDefinition<Message, Message>;
      await new Promise((resolve, reject) =>
        raw.makeUnaryRequest(
          def.path,
          def.requestSerialize,
          def.responseDeserialize,
          create(NetworkServiceRequestSchema) as Message,
          md,
          (err, res) => (err ? reject(err) : resolve(res)),
        ),
      );
      raw.close();
      const ctx = await seen.promise;
      expect(ctx.metadataAll["nsm-client-token"]).to.deep.equal(["a", "b"]);
      expect(ctx.metadata["nsm-client-token"]).to.equal("a");
      expect(ctx.peer).to.match(/127\.0\.0\.1:\d+/);
      expect(ctx.peerCertificate).to.equal(undefined);
    });

    it("serves grpc.health.v1 Check and Watch for every added service", async () => {
      const { server, health } = await start({}, { monitor: { async *monitorConnections() {} } });
      for (const service of ["", "networkservice.NetworkService", "connection.MonitorConnection"]) {
        expect((await health.check({ service })).status, service).to.equal(HealthCheckResponse_ServingStatus.SERVING);
      }
      await expectStatus(health.check({ service: "registry.NetworkServiceRegistry" }), Code.NotFound);

      const ac = new AbortController();
      const statuses: HealthCheckResponse_ServingStatus[] = [];
      const watch = (async () => {
        for await (const r of health.watch({ service: "connection.MonitorConnection" }, { signal: ac.signal })) {
          statuses.push(r.status);
          if (statuses.length === 1) server.health.set("connection.MonitorConnection", "NOT_SERVING");
          if (statuses.length === 2) break;
        }
      })();
      await watch;
      expect(statuses).to.deep.equal([HealthCheckResponse_ServingStatus.SERVING, HealthCheckResponse_ServingStatus.NOT_SERVING]);
      expect((await health.check({ service: "connection.MonitorConnection" })).status).to.equal(
        HealthCheckResponse_ServingStatus.NOT_SERVING,
      );
      const unknown = health.watch({ service: "nope" })[Symbol.asyncIterator]();
      expect((await unknown.next()).value?.status).to.equal(HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN);
      await unknown.return?.();
    });
  });

  describe("errors", () => {
    it("sends a thrown StatusError's code, message and trailers; other errors become Internal and are logged", async () => {
      const lines: string[] = [];
      const destination = new Writable({
        write(chunk: Buffer, _enc, cb) {
          lines.push(chunk.toString());
          cb();
        },
      });
      let calls = 0;
      const { ns } = await start(
        {
          async request(req) {
            calls++;
            if (calls === 1)
              throw new StatusError(Code.NotFound, "discover: no endpoint for my-service", { metadata: { "x-why": "none" } });
            if (calls === 2) throw new TypeError("boom");
            return req.connection ?? {};
          },
        },
        { log: createLogger({ destination, level: "error" }) },
      );
      const e1 = await expectStatus(ns.request({}), Code.NotFound);
      expect(e1.message).to.equal("discover: no endpoint for my-service");
      expect(e1.metadata).to.include({ "x-why": "none" });
      const e2 = await expectStatus(ns.request({}), Code.Internal);
      expect(e2.message).to.contain("boom");
      expect(lines.join("")).to.contain("boom");
      expect((await ns.request({ connection: { id: "ok" } })).id).to.equal("ok");
    });

    it("delivers streamed messages before the error status that ends the stream", async () => {
      const { monitor } = await start(
        {},
        {
          monitor: {
            async *monitorConnections() {
              yield { type: 1 };
              yield { type: 2 };
              throw new StatusError(Code.ResourceExhausted, "monitor: subscriber too slow");
            },
          },
        },
      );
      const got: number[] = [];
      const run = (async () => {
        for await (const ev of monitor.monitorConnections({})) got.push(ev.type);
      })();
      const err = await expectStatus(run, Code.ResourceExhausted);
      expect(err.message).to.equal("monitor: subscriber too slow");
      expect(got).to.deep.equal([1, 2]);
    });

    it("answers a malformed request with an error status and keeps serving", async () => {
      const { url, ns } = await start({});
      const raw = new grpc.Client(parseUrl(url).grpcTarget, grpc.credentials.createInsecure());
      const garbage = Buffer.from([0x0a, 0xff, 0xff, 0x01]); // field 1, length far past the end
      const code = await new Promise<number>((resolve) =>
        raw.makeUnaryRequest(
          "/networkservice.NetworkService/Request",
          (b: Buffer) => b,
          (b: Buffer) => b,
          garbage,
          (err) => resolve(err?.code ?? 0),
        ),
      );
      raw.close();
      expect([Code.InvalidArgument, Code.Internal]).to.include(code);
      expect((await ns.request({ connection: { id: "still-up" } })).id).to.equal("still-up");
    });
  });

  describe("streams, interceptors and shutdown", () => {
    it("runs a bidi stream with requests and responses interleaved", async () => {
      const { ipam } = await start(
        {},
        {
          ipam: {
            async *managePrefixes(reqs) {
              for await (const r of reqs) yield { prefix: r.prefix, excludePrefixes: r.excludePrefixes };
            },
          },
        },
      );
      const next = deferred();
      let gate = next;
      async function* reqs() {
        for (let i = 0; i < 3; i++) {
          yield { type: 1, prefix: `169.254.${i}.0/24` };
          await gate.promise; // the next request only after the previous answer
        }
      }
      const got: string[] = [];
      for await (const r of ipam.managePrefixes(reqs())) {
        got.push(r.prefix);
        const g = gate;
        gate = deferred();
        g.resolve();
      }
      expect(got).to.deep.equal(["169.254.0.0/24", "169.254.1.0/24", "169.254.2.0/24"]);
    });

    it("cleans up both sides of a bidi stream the consumer leaves early", async () => {
      const serverDone = deferred<unknown>();
      const requestsClosed = deferred();
      const { ipam } = await start(
        {},
        {
          ipam: {
            async *managePrefixes(reqs, ctx) {
              try {
                for await (const r of reqs) yield { prefix: r.prefix };
              } catch (err) {
                serverDone.resolve(err);
                throw err;
              } finally {
                serverDone.resolve(ctx.signal.reason);
              }
            },
          },
        },
      );
      async function* reqs() {
        try {
          for (let i = 0; ; i++) {
            yield { type: 1, prefix: `169.254.${i % 250}.0/24` };
            await new Promise((r) => setImmediate(r));
          }
        } finally {
          requestsClosed.resolve();
        }
      }
      for await (const r of ipam.managePrefixes(reqs())) {
        expect(r.prefix).to.equal("169.254.0.0/24");
        break;
      }
      expect(isStatusError(await serverDone.promise, Code.Canceled)).to.equal(true);
      await requestsClosed.promise;
    });

    it("runs client-streaming calls (no NSM method uses them, so a test service is built from a descriptor)", async () => {
      // service test.Collector { rpc Collect(stream HealthCheckRequest) returns (HealthCheckResponse); }
      const fdp = create(FileDescriptorProtoSchema, {
        name: "collector.proto",
        package: "test",
        syntax: "proto3",
        dependency: [file_grpc_health_v1_health.proto.name],
        service: [
          {
            name: "Collector",
            method: [
              {
                name: "Collect",
                inputType: ".grpc.health.v1.HealthCheckRequest",
                outputType: ".grpc.health.v1.HealthCheckResponse",
                clientStreaming: true,
              },
            ],
          },
        ],
      });
      const registry = createFileRegistry(fdp, (name) =>
        name === file_grpc_health_v1_health.proto.name ? file_grpc_health_v1_health : undefined,
      );
      const collector = registry.getService("test.Collector");
      if (!collector) throw new Error("test service not built");
      expect(grpcServiceDefinition(collector).collect).to.include({
        path: "/test.Collector/Collect",
        requestStream: true,
        responseStream: false,
      });
      const server = createServer();
      servers.push(server);
      const seen: string[] = [];
      const impl = {
        async collect(reqs: AsyncIterable<HealthCheckRequest>) {
          for await (const r of reqs) seen.push(r.service);
          return { status: seen.length };
        },
      };
      server.addService(collector, impl as unknown as ServiceImpl<typeof collector>);
      const channel = dial(await server.listen("tcp://127.0.0.1:0"));
      channels.push(channel);
      const client = createClient(collector, channel) as unknown as {
        collect(reqs: AsyncIterable<{ service: string }>): Promise<HealthCheckResponse>;
      };
      async function* reqs() {
        yield { service: "a" };
        yield { service: "b" };
        yield { service: "c" };
      }
      expect((await client.collect(reqs())).status).to.equal(3);
      expect(seen).to.deep.equal(["a", "b", "c"]);
    });

    it("streams many messages through a slow consumer without loss", async () => {
      const n = 1000;
      const { monitor } = await start(
        {},
        {
          monitor: {
            async *monitorConnections() {
              for (let i = 0; i < n; i++) yield { type: 1, connections: { c: { id: String(i) } } };
            },
          },
        },
      );
      let i = 0;
      for await (const ev of monitor.monitorConnections({})) {
        expect(ev.connections.c?.id).to.equal(String(i++));
        if (i % 100 === 0) await new Promise((r) => setImmediate(r)); // yield to let buffers fill
      }
      expect(i).to.equal(n);
    });

    it("lets interceptors see method, metadata and the outcome of unary and streaming calls", async () => {
      const serverLog: string[] = [];
      const clientLog: string[] = [];
      const serverIc: ServerInterceptor = (next) => async (call) => {
        try {
          const res = await next(call);
          serverLog.push(`${call.path} ${call.ctx.metadata["x-trace"] ?? "-"} OK`);
          return res;
        } catch (err) {
          serverLog.push(`${call.path} ${call.ctx.metadata["x-trace"] ?? "-"} ${(err as StatusError).code}`);
          throw err;
        }
      };
      let messages = 0;
      const clientIc: ClientInterceptor = (next) => async (call) => {
        call.metadata["x-trace"] = "t1";
        const onMessage = call.onMessage;
        try {
          const res = await next({
            ...call,
            onMessage: (m) => {
              messages++;
              onMessage(m);
            },
          });
          clientLog.push(`${call.path} OK`);
          return res;
        } catch (err) {
          clientLog.push(`${call.path} ${(err as StatusError).code}`);
          throw err;
        }
      };
      const { ns, monitor } = await start(
        {
          async close() {
            throw new StatusError(Code.FailedPrecondition, "nope");
          },
        },
        {
          interceptors: [serverIc],
          clientInterceptors: [clientIc],
          monitor: {
            async *monitorConnections() {
              yield {};
              yield {};
            },
          },
        },
      );
      await ns.request({});
      await expectStatus(ns.close({}), Code.FailedPrecondition);
      for await (const _ of monitor.monitorConnections({})) void _;
      expect(serverLog).to.deep.equal([
        "/networkservice.NetworkService/Request t1 OK",
        `/networkservice.NetworkService/Close t1 ${Code.FailedPrecondition}`,
        "/connection.MonitorConnection/MonitorConnections t1 OK",
      ]);
      expect(clientLog).to.deep.equal([
        "/networkservice.NetworkService/Request OK",
        `/networkservice.NetworkService/Close ${Code.FailedPrecondition}`,
        "/connection.MonitorConnection/MonitorConnections OK",
      ]);
      expect(messages).to.equal(2);
    });

    it("ends active streams with Unavailable and aborts their handlers when the server closes", async () => {
      const reason = deferred<unknown>();
      const started = deferred();
      const { server, monitor } = await start(
        {},
        {
          monitor: {
            async *monitorConnections(_sel, ctx) {
              yield create(ConnectionEventSchema, { type: 0 });
              started.resolve();
              reason.resolve(await aborted(ctx.signal));
            },
          },
        },
      );
      const run = (async () => {
        for await (const _ of monitor.monitorConnections({})) void _;
      })();
      await started.promise;
      const closed = server.close({ graceMs: 2000 });
      await expectStatus(run, Code.Unavailable);
      expect(isStatusError(await reason.promise, Code.Unavailable)).to.equal(true);
      await closed;
    });

    it("listens on a unix socket and reports the bound URL", async () => {
      const { mkdtempSync, rmSync } = await import("node:fs");
      const { tmpdir } = await import("node:os");
      const { join } = await import("node:path");
      const dir = mkdtempSync(join(tmpdir(), "nsm-grpc-"));
      try {
        const server = createServer();
        servers.push(server);
        server.addService(NetworkService, { request: async (r) => r.connection ?? {}, close: async () => ({}) });
        const url = await server.listen(`unix://${join(dir, "s.sock")}`);
        expect(url).to.equal(`unix://${join(dir, "s.sock")}`);
        const channel = dial(url);
        channels.push(channel);
        expect((await createClient(NetworkService, channel).request({ connection: { id: "u" } })).id).to.equal("u");
        await server.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
