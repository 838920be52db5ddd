/** The typed layer's streams (server, client, bidi), interceptors and shutdown. */
import { create, createFileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { file_grpc_health_v1_health, type HealthCheckRequest, type HealthCheckResponse } from "@nsm-ts/api/health";
import { ConnectionEventSchema, NetworkService } from "@nsm-ts/api/networkservice";
import { aborted, deferred, expectStatus, grpcHarness } from "@nsm-ts/testing/grpc";
import { expect } from "chai";
import { Code, isStatusError, StatusError } from "../status/index.js";
import {
  type ClientInterceptor,
  createClient,
  createServer,
  dial,
  grpcServiceDefinition,
  type ServerInterceptor,
  type ServiceImpl,
} from "./index.js";

describe("grpc typed layer", () => {
  const { start, servers, channels, closeAll } = grpcHarness();
  afterEach(() => closeAll());

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
