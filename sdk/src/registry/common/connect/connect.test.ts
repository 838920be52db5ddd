/** connect (registry): the per-RPC token on every call, one channel per URL from the pool. */
import { create } from "@bufbuild/protobuf";
import { type NetworkService, NetworkServiceSchema } from "@nsm-ts/api/registry";
import { CallContext } from "@nsm-ts/base/context";
import { createServer, type NsmServer } from "@nsm-ts/base/grpc";
import { collect, ns } from "@nsm-ts/testing/registry";
import { createTestTokenGenerator } from "@nsm-ts/testing/token";
import { expect } from "chai";
import type { RegistryHandler } from "../../core/index.js";
import { registryHandler } from "../../core/index.js";
import { serveRegistry } from "../../grpc/index.js";
import { type ChannelPool, createChannelPool, newClient } from "./index.js";

describe("registry connect", () => {
  let server: NsmServer;
  let pool: ChannelPool;
  afterEach(async () => {
    pool.close();
    await server.close({ graceMs: 100 });
  });

  it("sends the caller's token on Register, Find and Unregister, over one pooled channel per URL", async () => {
    const seen: string[] = [];
    const recorder: RegistryHandler<NetworkService> = {
      register: async (ctx, e) => {
        seen.push(`register ${ctx.peer?.token ? "token" : "none"}`);
        return e;
      },
      find: async function* (ctx, q) {
        seen.push(`find ${ctx.peer?.token ? "token" : "none"}`);
        yield { entry: q.template, deleted: false };
      },
      unregister: async (ctx) => {
        seen.push(`unregister ${ctx.peer?.token ? "token" : "none"}`);
      },
    };
    server = createServer();
    serveRegistry(server, { ns: recorder });
    const url = await server.listen("tcp://127.0.0.1:0");
    pool = createChannelPool();
    expect(pool.get(url)).to.equal(pool.get(url));
    const h = registryHandler(newClient("ns", () => pool.get(url), { tokenGenerator: createTestTokenGenerator() }));
    const ctx = CallContext.create();
    await h.register(ctx, ns("svc"));
    expect(
      (await collect(h.find(ctx, { template: create(NetworkServiceSchema, { name: "q" }), watch: false }))).map((r) => r.entry.name),
    ).to.deep.equal(["q"]);
    await h.unregister(ctx, ns("svc"));
    expect(seen).to.deep.equal(["register token", "find token", "unregister token"]);
  });
});
