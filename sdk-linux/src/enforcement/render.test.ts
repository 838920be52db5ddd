import { expect } from "chai";
import {
  ENFORCE_PROTO,
  isPolicyTableOf,
  POLICY_TABLE_MIN,
  policyTableBase,
  renderRouting,
  routeArgs,
  ruleArgs,
  ruleKey,
} from "./render-routes.js";
import { renderSecurityGroups, type SgRenderResult, type SgRule, sgTableName } from "./render-sg.js";

const rule = (r: Partial<SgRule>): SgRule => ({
  direction: "ingress",
  etherType: "IPv4",
  protocol: "",
  portRangeMin: 0,
  portRangeMax: 0,
  remoteIpPrefix: "",
  remoteGroupId: "",
  ...r,
});

/** The rules of one chain of a rendered table. */
function chainLines(t: SgRenderResult, chain: string): readonly string[] {
  return t.table.chains.find((c) => c.name === chain)?.rules ?? [];
}

describe("enforcement: security groups → nftables", () => {
  it("allows TCP 8080 from the members of a remote group, stateful, dropping the rest in that direction", () => {
    const t = renderSecurityGroups("fwd-1", "c1", {
      ifName: "nsm-1",
      groups: [
        {
          id: "web",
          rules: [
            rule({ protocol: "tcp", portRangeMin: 8080, portRangeMax: 8080, remoteGroupId: "clients" }),
            rule({ direction: "egress", etherType: "" }),
          ],
        },
      ],
      members: new Map([["clients", ["198.51.100.5", "198.51.100.4/32", "fd00::5"]]]),
    });
    expect(t.table.family).to.equal("inet");
    expect(t.table.name)
      .to.equal(sgTableName("fwd-1", "c1"))
      .and.match(/^nsmts_sg_[0-9a-f]{20}$/);
    expect(t.skipped).to.deep.equal([]);
    expect(chainLines(t, "sg_ingress")).to.deep.equal([
      "ct state established,related accept",
      "ct state invalid drop",
      "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert, nd-redirect } accept",
      "meta nfproto ipv4 ip saddr { 198.51.100.4, 198.51.100.5 } tcp dport 8080 accept",
      "drop",
    ]);
    expect(chainLines(t, "sg_egress")).to.include.members(["meta nfproto ipv4 accept", "meta nfproto ipv6 accept", "drop"]);
    expect(t.table.chains.map((c) => [c.name, c.hook?.hook, c.rules[0]])).to.deep.equal([
      ["sg_in_hook", "prerouting", 'iifname "nsm-1" jump sg_ingress'],
      ["sg_out_hook", "postrouting", 'oifname "nsm-1" jump sg_egress'],
      ["sg_ingress", undefined, "ct state established,related accept"],
      ["sg_egress", undefined, "ct state established,related accept"],
    ]);
    expect(t.ruleCount).to.equal(3);
  });

  it("renders prefixes, ranges, ICMP type/code and protocol numbers; icmp in an IPv6 rule is ICMPv6", () => {
    const t = renderSecurityGroups("o", "c", {
      ifName: "nsm-1",
      groups: [
        {
          id: "g",
          rules: [
            rule({ protocol: "udp", portRangeMin: 5000, portRangeMax: 5010, remoteIpPrefix: "203.0.113.7/24" }),
            rule({ protocol: "icmp", portRangeMin: 8, remoteIpPrefix: "0.0.0.0/0" }),
            rule({ etherType: "IPv6", protocol: "icmp", remoteIpPrefix: "fd00::/8" }),
            rule({ protocol: "47" }),
            rule({ protocol: "tcp", portRangeMin: 1, portRangeMax: 65535 }),
          ],
        },
      ],
      members: new Map(),
    });
    expect(chainLines(t, "sg_ingress").slice(3, -1)).to.deep.equal([
      "meta nfproto ipv4 ip saddr 203.0.113.0/24 udp dport 5000-5010 accept",
      "meta nfproto ipv4 meta l4proto icmp icmp type 8 accept",
      "meta nfproto ipv6 ip6 saddr fd00::/8 meta l4proto ipv6-icmp accept",
      "meta nfproto ipv4 meta l4proto 47 accept",
      "meta nfproto ipv4 tcp dport 1-65535 accept",
    ]);
    expect(t.ruleCount).to.equal(5);
  });

  it("leaves out rules that match nothing (empty remote group, other family) and reports malformed ones by field", () => {
    const t = renderSecurityGroups("o", "c", {
      ifName: "nsm-1",
      groups: [
        {
          id: "g",
          rules: [
            rule({ protocol: "tcp", portRangeMin: 22, remoteGroupId: "empty" }),
            rule({ etherType: "IPv6", remoteIpPrefix: "198.51.100.0/24" }),
            rule({ protocol: "bogus" }),
            rule({ direction: "sideways" }),
            rule({ protocol: "tcp", portRangeMin: 90, portRangeMax: 80 }),
          ],
        },
      ],
      members: new Map([["empty", []]]),
    });
    expect(t.ruleCount).to.equal(0);
    expect(chainLines(t, "sg_ingress").at(-1)).to.equal("drop");
    expect(t.skipped).to.have.length(3);
    expect(t.skipped[0]).to.match(/^security group "g" rules\[2\]: protocol "bogus"/);
    expect(t.skipped[1]).to.match(/rules\[3\]: direction "sideways"/);
    expect(t.skipped[2]).to.match(/rules\[4\]: port range 90-80/);
  });

  it("refuses an interface name that could break out of the script", () => {
    expect(() => renderSecurityGroups("o", "c", { ifName: 'a"; flush ruleset', groups: [], members: new Map() })).to.throw(
      /interface name/,
    );
  });

  it("names tables per owner and connection", () => {
    expect(sgTableName("a", "c1")).to.not.equal(sgTableName("a", "c2")).and.not.equal(sgTableName("b", "c1"));
    expect(sgTableName("a", "c1")).to.equal(sgTableName("a", "c1"));
  });
});

describe("enforcement: route table and policies → routes and rules", () => {
  it("routes route-table prefixes via next_hop, or via the connection's peer address of the family", () => {
    const p = renderRouting("o", "c", {
      ifName: "nsm-1",
      peer: ["198.51.100.1/32", "fd00::1/128"],
      tableRoutes: [
        { destination: "198.51.100.0/24", nextHop: "", priority: 0 },
        { destination: "203.0.113.9/24", nextHop: "198.51.100.254", priority: 5 },
        { destination: "fd00:7::/64", nextHop: "", priority: 0 },
        { destination: "198.51.100.1", nextHop: "", priority: 0 },
      ],
      policies: [],
    });
    expect(p.skipped).to.deep.equal([]);
    expect(p.routes).to.deep.equal([
      { family: 4, dst: "198.51.100.0/24", gateway: "198.51.100.1", dev: "nsm-1", metric: 0 },
      { family: 4, dst: "203.0.113.0/24", gateway: "198.51.100.254", dev: "nsm-1", metric: 5 },
      { family: 6, dst: "fd00:7::/64", gateway: "fd00::1", dev: "nsm-1", metric: 1024 },
      { family: 4, dst: "198.51.100.1/32", dev: "nsm-1", metric: 0 },
    ]);
    expect(routeArgs(p.routes[0] as never)).to.deep.equal([
      "route",
      "replace",
      "198.51.100.0/24",
      "via",
      "198.51.100.1",
      "dev",
      "nsm-1",
      "metric",
      "0",
      "proto",
      String(ENFORCE_PROTO),
      "onlink",
    ]);
  });

  it("gives each policy its own table and a rule per family, marked as ours", () => {
    const base = policyTableBase("o", "c");
    expect(base)
      .to.be.at.least(POLICY_TABLE_MIN)
      .and.below(2 ** 32);
    const p = renderRouting("o", "c", {
      ifName: "nsm-1",
      peer: ["198.51.100.1/32"],
      tableRoutes: [],
      policies: [
        { from: "198.51.100.2/32", proto: "6", dstPort: "8080", srcPort: "", routes: [{ prefix: "203.0.113.0/24", nextHop: "" }] },
        { from: "", proto: "", dstPort: "", srcPort: "", routes: [{ prefix: "fd00:9::/64", nextHop: "fd00::9" }] },
      ],
    });
    expect(p.rules).to.deep.equal([
      { family: 4, table: base, from: "198.51.100.2/32", ipproto: "tcp", dport: "8080" },
      { family: 6, table: base + 1 },
    ]);
    expect(p.routes.map((r) => [r.dst, r.gateway, r.table])).to.deep.equal([
      ["203.0.113.0/24", "198.51.100.1", base],
      ["fd00:9::/64", "fd00::9", base + 1],
    ]);
    expect(ruleArgs("add", p.rules[0] as never)).to.deep.equal([
      "-4",
      "rule",
      "add",
      "pref",
      "20000",
      "from",
      "198.51.100.2/32",
      "ipproto",
      "tcp",
      "dport",
      "8080",
      "table",
      String(base),
      "protocol",
      String(ENFORCE_PROTO),
    ]);
    expect(isPolicyTableOf(base, base + 1)).to.equal(true);
    expect(isPolicyTableOf(base, base + 64)).to.equal(false);
    expect(ruleKey(p.rules[1] as never)).to.equal(`6|${base + 1}|all|||`);
  });

  it("skips malformed entries, naming the field", () => {
    const p = renderRouting("o", "c", {
      ifName: "nsm-1",
      peer: [],
      tableRoutes: [{ destination: "nope", nextHop: "", priority: 0 }],
      policies: [
        { from: "", proto: "udp", dstPort: "70000", srcPort: "", routes: [] },
        { from: "", proto: "", dstPort: "53", srcPort: "", routes: [] },
        { from: "", proto: "", dstPort: "", srcPort: "", routes: [{ prefix: "198.51.100.0/24", nextHop: "fd00::1" }] },
      ],
    });
    expect(p.skipped).to.deep.equal([
      'route table routes[0]: "nope" is not a prefix',
      'ip_context.policies[0]: dst_port "70000" is not a port or range within 1..65535',
      "ip_context.policies[1]: dst_port/src_port need proto tcp, udp or sctp",
      'ip_context.policies[2].routes[0]: next hop "fd00::1" is not an address of the prefix\'s family',
    ]);
    expect(p.rules).to.deep.equal([]);
  });
});
