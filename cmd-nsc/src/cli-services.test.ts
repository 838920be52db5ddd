import { create } from "@bufbuild/protobuf";
import {
  BackendSchema,
  BalancingPolicy,
  FrontendSchema,
  Protocol,
  ReconcileState,
  ReconcileStatusSchema,
  ServiceSchema,
} from "@nsm-ts/api/services";
import { createServer, dial } from "@nsm-ts/base/grpc";
import { silentLogger } from "@nsm-ts/base/log";
import { registerServices, ServiceModel } from "@nsm-ts/services";
import { expect } from "chai";
import { parseCliArgs } from "./cli.js";
import { cliConfig } from "./cli-config.js";
import { runServicesCli } from "./cli-services.js";

describe("cmd-nsc list/watch services", () => {
  it("lists services with frontends, backends (source, health) and reconcile status, as a table and as JSON", async () => {
    const model = new ServiceModel();
    await model.writeService(create(ServiceSchema, { name: "web", ports: [{ name: "http", port: 80, protocol: Protocol.TCP }] }), "create");
    await model.createFrontend(create(FrontendSchema, { service: "web", policy: BalancingPolicy.CLOSEST, address: "169.254.201.1" }));
    await model.writeBackend(
      create(BackendSchema, { service: "web", source: "registry", name: "web-1", address: "169.254.10.1", node: "n1" }),
      "put",
    );
    await model.reportStatus(
      create(ReconcileStatusSchema, { node: "n1", service: "web", state: ReconcileState.ERROR, message: "nft: busy" }),
    );
    const server = createServer();
    registerServices(server, model);
    const channel = dial(await server.listen("tcp://127.0.0.1:0"));
    const cfg = cliConfig.parse({});
    const ac = new AbortController();
    const ctx = { signal: ac.signal, log: silentLogger, argv: [] };
    try {
      let text = "";
      await runServicesCli(parseCliArgs(["list", "services"]), cfg, ctx, { write: (s: string) => (text += s) }, channel);
      expect(text.split("\n")[0]).to.match(/^NAME\s+PORTS\s+FRONTENDS\s+BACKENDS\s+RECONCILE$/);
      expect(text).to.contain("http:80/tcp").and.contain("169.254.201.1(closest)").and.contain("169.254.10.1:80[registry,healthy,n1]");
      expect(text).to.contain("n1=error: nft: busy");
      let json = "";
      await runServicesCli(parseCliArgs(["list", "svc", "-o", "json"]), cfg, ctx, { write: (s: string) => (json += s) }, channel);
      const parsed = JSON.parse(json) as {
        items: Array<{ service: { name: string; backends: Array<{ source: string }> }; status: Array<{ state: string }> }>;
      };
      expect(parsed.items[0]?.service.name).to.equal("web");
      expect(parsed.items[0]?.service.backends[0]?.source).to.equal("registry");
      expect(parsed.items[0]?.status[0]?.state).to.equal("RECONCILE_STATE_ERROR");

      // watch: the current service, then a change, one JSON line per event.
      const lines: string[] = [];
      let wake: () => void = () => undefined;
      const out = {
        write: (s: string) => {
          lines.push(s);
          wake();
        },
      };
      const until = (n: number): Promise<void> =>
        lines.length >= n ? Promise.resolve() : new Promise<void>((r) => (wake = () => (lines.length >= n ? r() : undefined)));
      const watching = runServicesCli(parseCliArgs(["watch", "services", "-o", "json"]), cfg, ctx, out, channel);
      await until(2);
      await model.writeBackend(create(BackendSchema, { service: "web", address: "169.254.10.2" }), "create");
      await until(3);
      const events = lines.map((l) => (JSON.parse(l) as { type: string }).type);
      expect(events.slice(0, 2).sort()).to.deep.equal(["ADDED", "STATUS"]);
      expect(events[2]).to.equal("MODIFIED");
      ac.abort();
      await watching.catch(() => undefined);
    } finally {
      ac.abort();
      channel.close();
      await server.close({ graceMs: 0 });
    }
  });
});
