import { create } from "@bufbuild/protobuf";
import { Health, HealthCheckRequestSchema, HealthCheckResponse_ServingStatus } from "@nsm-ts/api/health";
import { expect } from "chai";
import type { NsmServer } from "../grpc/index.js";
import { Code, fail } from "../status/index.js";
import { type ConnectRoute, createConnectHandler, listenConnect, readOnlyRoute, withConnectRoutes } from "./index.js";

describe("base/connect", () => {
  it("withConnectRoutes: a service added to the gRPC server is served over Connect too, status codes kept", async () => {
    // A gRPC server stand-in that records what is added to it.
    const added: string[] = [];
    const server: NsmServer = {
      addService: (s) => void added.push(s.typeName),
      listen: async (u) => u,
      health: { set: () => undefined },
      close: async () => undefined,
    };
    const routes: ConnectRoute[] = [];
    withConnectRoutes(server, routes).addService(Health, {
      check: async (r) =>
        r.service === "x"
          ? { status: HealthCheckResponse_ServingStatus.SERVING }
          : fail(Code.NotFound, `test: service: ${r.service} unknown`),
      watch: async function* () {},
    });
    expect(added).to.deep.equal(["grpc.health.v1.Health"]);
    expect(routes.map((r) => r.service.typeName)).to.deep.equal(["grpc.health.v1.Health"]);
    const http = await listenConnect("tcp://127.0.0.1:0", createConnectHandler(routes));
    try {
      const url = `${http.url.replace("0.0.0.0", "127.0.0.1")}/grpc.health.v1.Health/Check`;
      const post = async (body: unknown) => {
        const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      expect(await post(create(HealthCheckRequestSchema, { service: "x" }))).to.deep.equal({ status: 200, body: { status: "SERVING" } });
      const missing = await post({ service: "y" });
      expect(missing.status).to.equal(404);
      expect(missing.body).to.deep.equal({ code: "not_found", message: "test: service: y unknown" });
    } finally {
      await http.close();
    }
  });

  it("readOnlyRoute keeps get, list and watch methods and refuses the others with PermissionDenied", async () => {
    const calls: string[] = [];
    const route: ConnectRoute = {
      service: Health,
      impl: { check: () => calls.push("check"), watch: () => calls.push("watch") },
    };
    const ro = readOnlyRoute(route, "test");
    (ro.impl.watch as () => void)();
    expect(calls).to.deep.equal(["watch"]);
    expect(() => (ro.impl.check as () => void)()).to.throw(
      /^test: grpc\.health\.v1\.Health\/check: a Connect \(HTTP\) call has no identity/,
    );
  });
});
