import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describeProgramProcess, envWithout } from "@nsm-ts/testing/program";
import { expect } from "chai";
import { config } from "./config.js";

const program = "cmd-endpoint";
const bin = fileURLToPath(new URL(`../bin/${program}.js`, import.meta.url));
/** A valid environment for the process tests (it must not bind well-known ports once run.ts serves). */
const validEnv: Record<string, string> = { NSM_SERVICE_NAMES: "icmp-responder", NSM_LISTEN_ON: "tcp://127.0.0.1:0" };

describe(`${program} config`, () => {
  it("has upstream defaults and needs NSM_SERVICE_NAMES", () => {
    const cfg = config.parse({ NSM_SERVICE_NAMES: "icmp-responder" });
    expect(cfg).to.deep.include({
      listenOn: undefined,
      connectTo: "unix:///var/lib/networkservicemesh/nsm.io.sock",
      serviceNames: ["icmp-responder"],
      labels: {},
      cidrPrefix: ["169.254.0.0/16"],
      ipamPolicy: "polite",
      ipamUrl: undefined,
      subnet: undefined,
      registerService: true,
      payload: "ETHERNET",
      idleTimeout: 0,
    });
    expect(cfg.name).to.match(/^endpoint-.+/);
    expect(() => config.parse({})).to.throw(/^NSM_SERVICE_NAMES: is required/);
    expect(() => config.parse({ NSM_SERVICE_NAMES: "," })).to.throw(/^NSM_SERVICE_NAMES: must list at least one value/);
  });

  it("reads given values", () => {
    const cfg = config.parse({
      NSM_SERVICE_NAMES: "a, b",
      NSM_LABELS: "app:icmp",
      NSM_CIDR_PREFIX: "169.254.10.0/24,fd00::/120",
      NSM_IPAM_URL: "tcp://127.0.0.1:5002",
      NSM_SUBNET: "subnet-1",
      NSM_REGISTER_SERVICE: "false",
      NSM_PAYLOAD: "ip",
      NSM_IPAM_POLICY: "STRICT",
      NSM_IDLE_TIMEOUT: "1h",
      NSM_DNS_CONFIGS:
        '[{"dns_server_ips": ["169.254.0.53", "[fd00::53]:5353"], "search_domains": ["my-svc"]}, {"dnsServerIps": ["198.51.100.53"]}]',
    });
    expect(cfg).to.deep.include({
      serviceNames: ["a", "b"],
      labels: { app: "icmp" },
      cidrPrefix: ["169.254.10.0/24", "fd00::/120"],
      ipamUrl: "tcp://127.0.0.1:5002",
      subnet: "subnet-1",
      registerService: false,
      payload: "IP",
      ipamPolicy: "strict",
      idleTimeout: 3_600_000,
      dnsConfigs: [
        { dnsServerIps: ["169.254.0.53", "[fd00::53]:5353"], searchDomains: ["my-svc"] },
        { dnsServerIps: ["198.51.100.53"], searchDomains: [] },
      ],
    });
  });

  it("names the variable of each bad value", () => {
    const bad: Record<string, string> = {
      NSM_LISTEN_ON: "tcp://:99999",
      NSM_CONNECT_TO: "nsmgr",
      NSM_LABELS: ":x",
      NSM_CIDR_PREFIX: "169.254.0.0/33",
      NSM_IPAM_POLICY: "rude",
      NSM_IPAM_URL: "http://x:1",
      NSM_REGISTER_SERVICE: "maybe",
      NSM_PAYLOAD: "L2",
      NSM_IDLE_TIMEOUT: "1d",
      NSM_DNS_CONFIGS: '[{"dns_server_ips": ["dns.example"]}]',
    };
    for (const [name, value] of Object.entries(bad)) {
      expect(() => config.parse({ NSM_SERVICE_NAMES: "s", [name]: value }), name).to.throw(new RegExp(`^${name}: `));
    }
    expect(() => config.parse({ NSM_SERVICE_NAMES: "s", NSM_IPAM_URL: "tcp://127.0.0.1:5002" })).to.throw(
      /^NSM_SUBNET: NSM_IPAM_URL and NSM_SUBNET must be set together/,
    );
    expect(() => config.parse({ NSM_SERVICE_NAMES: "s", NSM_SUBNET: "x" })).to.throw(/^NSM_IPAM_URL: /);
    expect(() => config.parse({ NSM_SERVICE_NAMES: "s", NSM_SECURITY_GROUPS: "web" })).to.throw(/^NSM_SECURITY_GROUPS: needs NSM_IPAM_URL/);
    const sg = config.parse({
      NSM_SERVICE_NAMES: "s",
      NSM_IPAM_URL: "tcp://127.0.0.1:5002",
      NSM_SUBNET: "x",
      NSM_SECURITY_GROUPS: "web, db",
    });
    expect(sg.securityGroups).to.deep.equal(["web", "db"]);
  });

  it("the built program without NSM_SERVICE_NAMES prints one line and exits 2", () => {
    const env = envWithout(config, {});
    const r = spawnSync(process.execPath, [bin], { env, encoding: "utf8", timeout: 15_000 });
    expect(r.status).to.equal(2);
    const lines = r.stderr.split("\n");
    expect(lines, r.stderr).to.have.length(2); // one line, then the final newline
    expect(lines[0]).to.equal(`${program}: NSM_SERVICE_NAMES: is required: Network services this endpoint provides, comma separated`);
  });

  describeProgramProcess({
    program,
    bin,
    config,
    readme: new URL("../README.md", import.meta.url),
    validEnv,
    badVariable: {
      env: { ...validEnv, NSM_CIDR_PREFIX: "169.254.0.0/33" },
      line: `${program}: NSM_CIDR_PREFIX: invalid CIDR "169.254.0.0/33": expected address/length, e.g. 169.254.0.0/16 or fd00::/64`,
    },
  });
});
