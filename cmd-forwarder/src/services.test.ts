import { create } from "@bufbuild/protobuf";
import { BackendHealth, BalancingPolicy, Protocol, ResolvedServiceSchema } from "@nsm-ts/api/services";
import { services } from "@nsm-ts/sdk-linux";
import { expect } from "chai";
import { viewOf } from "./services.js";

describe("cmd-forwarder: resolved services → data-plane views", () => {
  it("maps policies, protocols, health and weights, and renders", () => {
    const s = create(ResolvedServiceSchema, {
      name: "web",
      revision: "42",
      sessionAffinitySeconds: 30,
      frontends: [
        { address: "169.254.250.1", port: 80, protocol: Protocol.TCP, policy: BalancingPolicy.ROUND_ROBIN, portName: "http" },
        { address: "169.254.250.65", port: 53, protocol: Protocol.UDP, policy: BalancingPolicy.CLOSEST, portName: "dns" },
        { address: "169.254.250.129", port: 80, protocol: Protocol.UNSPECIFIED, policy: BalancingPolicy.CONSISTENT_HASH, portName: "http" },
      ],
      backends: [
        {
          name: "a",
          address: "169.254.1.2",
          port: 8080,
          protocol: Protocol.UNSPECIFIED,
          portName: "http",
          node: "n1",
          zone: "z",
          weight: 0,
        },
        {
          name: "b",
          address: "169.254.2.2",
          port: 5353,
          protocol: Protocol.UDP,
          portName: "dns",
          node: "n2",
          weight: 3,
          health: BackendHealth.DRAINING,
        },
      ],
    });
    const v = viewOf(s);
    expect(v).to.deep.include({ name: "web", revision: "42", sessionAffinitySeconds: 30 });
    expect(v.frontends.map((f) => `${f.policy}/${f.protocol}`)).to.deep.equal(["round-robin/tcp", "closest/udp", "consistent-hash/tcp"]);
    expect(v.backends.map((b) => `${b.protocol}/${b.weight}/${b.health}`)).to.deep.equal(["tcp/1/healthy", "udp/3/draining"]);
    const t = services.renderServiceTable(v, { node: "n1", zone: "z" });
    expect(t?.chains[0]?.rules[0]).to.equal("ip daddr 169.254.250.1 meta l4proto tcp th dport 80 jump pick_0");
    // The only udp backend drains: the closest frontend refuses new flows.
    expect(t?.chains[2]?.rules[0]).to.equal("meta l4proto udp reject");
  });

  it("maps an address-only service (port 0) to protocol any", () => {
    const v = viewOf(
      create(ResolvedServiceSchema, {
        name: "all",
        frontends: [{ address: "169.254.250.2", port: 0, policy: BalancingPolicy.ROUND_ROBIN }],
        backends: [{ name: "a", address: "169.254.1.2", port: 0 }],
      }),
    );
    expect(v.frontends[0]?.protocol).to.equal("any");
    expect(v.backends[0]?.protocol).to.equal("any");
    expect(services.renderServiceTable(v, { node: "", zone: "" })?.chains[1]?.rules).to.deep.equal(["dnat ip to 169.254.1.2"]);
  });
});
