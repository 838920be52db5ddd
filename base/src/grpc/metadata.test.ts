/** The typed layer's request metadata, response headers and grpc.health.v1. */
import { create, type Message } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { HealthCheckResponse_ServingStatus } from "@nsm-ts/api/health";
import { NetworkService, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { deferred, expectStatus, grpcHarness } from "@nsm-ts/testing/grpc";
import { expect } from "chai";
import { Code } from "../status/index.js";
import { grpcServiceDefinition, parseUrl, type ServerCallContext } from "./index.js";

describe("grpc typed layer", () => {
  const { start, closeAll } = grpcHarness();
  afterEach(() => closeAll());

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
});
