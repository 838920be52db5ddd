import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Protocol } from "@nsm-ts/api/services";
import { MockClock } from "@nsm-ts/base/clock";
import { createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { expect } from "chai";
import { followResolvedServices, type ResolvedServiceUpdate, servicesClient } from "./client.js";
import { registerServices } from "./grpc.js";
import { ref, resolved, svc } from "./model.fixture.js";
import { ServiceModel } from "./model.js";

describe("services client: followResolvedServices", () => {
  let dir = "";
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("reconnects after the registry restarts and prunes services deleted while it was away", async () => {
    dir = mkdtempSync(join(tmpdir(), "nsm-svc-"));
    const url = `unix://${join(dir, "registry.sock")}`;
    const model = new ServiceModel();
    await model.writeService(svc({ name: "a", ports: [{ port: 80, protocol: Protocol.TCP }] }), "create");
    await model.writeService(svc({ name: "b", ports: [{ port: 80 }] }), "create");
    const serve = async (): Promise<NsmServer> => {
      const s = createServer();
      registerServices(s, model);
      await s.listen(url);
      return s;
    };
    let server = await serve();
    const channel = dial(url);
    const clock = new MockClock();
    const ac = new AbortController();
    const it = followResolvedServices(servicesClient(channel).dataPlane, { node: "n1", signal: ac.signal, clock, retryMs: 500 })[
      Symbol.asyncIterator
    ]();
    const next = async (): Promise<ResolvedServiceUpdate> => (await it.next()).value as ResolvedServiceUpdate;
    const kinds = (u: ResolvedServiceUpdate): string =>
      u.kind === "upsert" ? `upsert ${u.service.name}` : u.kind === "delete" ? `delete ${u.name}` : "synced";
    try {
      expect([kinds(await next()), kinds(await next()), kinds(await next())]).to.deep.equal(["upsert a", "upsert b", "synced"]);
      const pending = next();
      await server.close({ graceMs: 0 });
      await clock.untilPending(1); // the follower waits retryMs before reconnecting
      await model.deleteService(ref({ service: "b" }));
      expect(resolved(model, "b")).to.equal(undefined);
      server = await serve();
      await clock.advance(500);
      expect(kinds(await pending)).to.equal("upsert a");
      expect(kinds(await next())).to.equal("delete b");
      const synced = await next();
      expect(synced.kind === "synced" && [...synced.names]).to.deep.equal(["a"]);
    } finally {
      ac.abort();
      await it.return?.(undefined);
      channel.close();
      await server.close({ graceMs: 0 });
    }
  });
});
