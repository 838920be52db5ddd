import { create } from "@bufbuild/protobuf";
import { type Port, PortSchema, SecurityGroupSchema } from "@nsm-ts/api/resources";
import { silentLogger } from "@nsm-ts/base/log";
import { expect } from "chai";
import { ReadCache, renderAttachment } from "./resolve.js";
import type { ResourceView } from "./view.js";

describe("enforcement: rendering many connections against a large remote group", () => {
  const members: Port[] = Array.from({ length: 1000 }, (_, i) =>
    create(PortSchema, {
      id: `m${i}`,
      fixedIps: [{ subnetId: "", ipAddress: `198.51.${100 + (i >> 8)}.${i & 255}` }],
      securityGroupIds: ["clients"],
    }),
  );
  const web = create(SecurityGroupSchema, {
    id: "web",
    rules: [
      {
        direction: "ingress",
        etherType: "IPv4",
        protocol: "tcp",
        portRangeMin: 8080,
        portRangeMax: 0,
        remoteIpPrefix: "",
        remoteGroupId: "clients",
      },
    ],
  });
  let listed = 0;
  const view: ResourceView = {
    getPort: async (id) => (id.startsWith("c") ? create(PortSchema, { id, securityGroupIds: ["web"] }) : undefined),
    getSecurityGroup: async (id) => (id === "web" ? web : undefined),
    portsInGroup: async (id) => {
      listed++;
      return id === "clients" ? members : [];
    },
    getSubnet: async () => undefined,
    getRouteTable: async () => undefined,
    watch: () => ({ changes: (async function* () {})(), ready: Promise.resolve() }),
  };
  const attachment = (id: string) => ({ connectionId: id, netnsUrl: "", ifName: "nsm-1", portId: `c${id}`, peer: [], policies: [] });

  it("depends on the remote group as one key, not on each member port, and reads the members once per pass", async () => {
    listed = 0;
    const cache = new ReadCache(view, new AbortController().signal);
    const [a, b] = await Promise.all([
      renderAttachment("fwd", attachment("1"), cache, silentLogger),
      renderAttachment("fwd", attachment("2"), cache, silentLogger),
    ]);
    // A change of a member port names the groups it was and is in, so one index entry per group suffices.
    expect(a?.deps.ports).to.deep.equal(["c1"]);
    expect(a?.deps.groups).to.deep.equal(["web", "clients"]);
    expect(listed).to.equal(1);
    const rule = (r: typeof a) => r?.state.nft?.chains.find((c) => c.name === "sg_ingress")?.rules.find((x) => x.includes("8080"));
    expect(rule(a)).to.include("198.51.103.231").and.equal(rule(b));
  });
});
