import { statSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { chain, handler, mechanisms, metadata } from "@nsm-ts/sdk/networkservice";
import { expect } from "chai";
import * as kernel from "./index.js";

describe("mechanisms: KERNEL server for endpoints", () => {
  const req = (ifName?: string) =>
    create(NetworkServiceRequestSchema, {
      connection: { id: "c1", networkService: "my-service-name" },
      // What a forwarder offers an endpoint: KERNEL without netns (and usually without a name).
      mechanismPreferences: [{ cls: "LOCAL", type: "KERNEL", parameters: ifName ? { name: ifName } : {} }],
    });
  const h = (opts: kernel.KernelServerOptions = {}) =>
    handler(chain(metadata.newServer(), mechanisms.newServer({ KERNEL: kernel.newServer(opts) })));

  it("puts this process's netns (as inode://dev/ino) and a generated upstream-style name into the mechanism, stable on refresh", async () => {
    const s = h();
    const conn = await s.request(CallContext.create(), req());
    const st = statSync("/proc/self/ns/net");
    expect(conn.mechanism?.parameters.inodeURL).to.equal(`inode://${st.dev}/${st.ino}`);
    const name = conn.mechanism?.parameters.name ?? "";
    expect(name).to.match(/^my-service-[0-9A-Za-z]{4}$/);
    const again = await s.request(CallContext.create(), create(NetworkServiceRequestSchema, { connection: conn }));
    expect(again.mechanism?.parameters.name).to.equal(name);
  });

  it("keeps a requested name, prefers a configured one, and uses the configured netns URL", async () => {
    expect((await h().request(CallContext.create(), req("nse-1"))).mechanism?.parameters.name).to.equal("nse-1");
    const conn = await h({ interfaceName: "a-very-long-interface-name", netnsUrl: "/var/run/netns/ep" }).request(
      CallContext.create(),
      req("nse-1"),
    );
    expect(conn.mechanism?.parameters).to.deep.include({ name: "a-very-long-int", inodeURL: "/var/run/netns/ep" });
  });
});
