import { fileURLToPath } from "node:url";
import { authorize } from "@nsm-ts/sdk/registry";
import { describeProgramProcess } from "@nsm-ts/testing/program";
import { expect } from "chai";
import { config } from "./config.js";

const program = "cmd-registry";
const bin = fileURLToPath(new URL(`../bin/${program}.js`, import.meta.url));
/** A valid environment for the process tests (it must not bind well-known ports once run.ts serves). */
const validEnv: Record<string, string> = { NSM_LISTEN_ON: "tcp://127.0.0.1:0" };

describe(`${program} config`, () => {
  it("has upstream defaults", () => {
    const cfg = config.parse({});
    expect(cfg).to.deep.include({
      listenOn: ["tcp://:5002"],
      registryStore: { kind: "memory" },
      expirePeriod: 60_000,
      maxTokenLifetime: 600_000,
      logLevel: "info",
      telemetry: false,
      tlsCertFile: undefined,
    });
    expect(cfg.name).to.match(/^registry-.+/);
  });

  it("reads the etcd store and every listen URL", () => {
    const cfg = config.parse({
      NSM_REGISTRY_STORE: "etcd://127.0.0.1:2379, [::1]:2379",
      NSM_LISTEN_ON: "tcp://127.0.0.1:5002,unix:///tmp/registry.sock",
      NSM_EXPIRE_PERIOD: "30s",
      NSM_NAME: "registry-a",
    });
    expect(cfg.registryStore).to.deep.equal({ kind: "etcd", endpoints: ["127.0.0.1:2379", "[::1]:2379"] });
    expect(cfg.listenOn).to.deep.equal(["tcp://127.0.0.1:5002", "unix:///tmp/registry.sock"]);
    expect(cfg.expirePeriod).to.equal(30_000);
    expect(cfg.name).to.equal("registry-a");
  });

  it("NSM_REGISTRARS: unset keeps the built-in nsmgr rule; a pattern list replaces it", () => {
    expect(config.parse({}).registrars).to.equal(undefined);
    const cfg = config.parse({ NSM_REGISTRARS: "spiffe://td/ns/nsm-system/sa/nsmgr-*, spiffe://td/proxy" });
    expect(cfg.registrars).to.deep.equal(["spiffe://td/ns/nsm-system/sa/nsmgr-*", "spiffe://td/proxy"]);
    // What run.ts passes to the registry server chain's authorize elements.
    const rule = authorize.registrarPatterns(cfg.registrars ?? []);
    expect(rule("spiffe://td/ns/nsm-system/sa/nsmgr-node1")).to.equal(true);
    expect(rule("spiffe://td/proxy")).to.equal(true);
    expect(rule("spiffe://td/nsmgr-node1"), "the built-in rule no longer applies").to.equal(false);
    expect(rule("spiffe://td/proxy-2")).to.equal(false);
  });

  it("NSM_RESOURCES_ADMINS: a list of SPIFFE IDs, none by default", () => {
    expect(config.parse({}).resourcesAdmins).to.equal(undefined);
    expect(
      config.parse({ NSM_RESOURCES_ADMINS: "spiffe://td/ops, spiffe://td/ns/nsm-system/sa/ipam-admin" }).resourcesAdmins,
    ).to.deep.equal(["spiffe://td/ops", "spiffe://td/ns/nsm-system/sa/ipam-admin"]);
  });

  it("NSM_CONNECT_LISTEN_ON: off by default, a tcp URL when set", () => {
    expect(config.parse({}).connectListenOn).to.equal(undefined);
    expect(config.parse({ NSM_CONNECT_LISTEN_ON: "tcp://127.0.0.1:5003" }).connectListenOn).to.equal("tcp://127.0.0.1:5003");
    expect(() => config.parse({ NSM_CONNECT_LISTEN_ON: "unix:///tmp/x.sock" })).to.throw(/^NSM_CONNECT_LISTEN_ON: /);
  });

  it("NSM_RESOURCES_DNS_LISTEN_ON off and NSM_NODE_HEARTBEAT_TIMEOUT 30s by default", () => {
    expect(config.parse({})).to.deep.include({ resourcesDnsListenOn: undefined, nodeHeartbeatTimeout: 30_000 });
    const cfg = config.parse({ NSM_RESOURCES_DNS_LISTEN_ON: "[::1]:5353", NSM_NODE_HEARTBEAT_TIMEOUT: "1m" });
    expect(cfg).to.deep.include({ resourcesDnsListenOn: "[::1]:5353", nodeHeartbeatTimeout: 60_000 });
  });

  it("interdomain: NSM_PROXY_REGISTRY_URL, NSM_REGISTRY_MODE=proxy-dns with NSM_DNS_SERVERS", async () => {
    const d = config.parse({});
    expect(d).to.deep.include({ mode: "registry", proxyRegistryUrl: undefined, dnsServers: undefined, dnsQueryTimeout: 2000 });
    const cfg = config.parse({
      NSM_REGISTRY_MODE: "proxy-dns",
      NSM_PROXY_REGISTRY_URL: "tcp://127.0.0.1:5004",
      NSM_DNS_SERVERS: "127.0.0.1:5353, [fd00::53]:53, 198.51.100.53",
    });
    expect(cfg).to.deep.include({ mode: "proxy-dns", proxyRegistryUrl: "tcp://127.0.0.1:5004" });
    expect(cfg.dnsServers).to.deep.equal(["127.0.0.1:5353", "[fd00::53]:53", "198.51.100.53"]);
    const { dnsServersOf } = await import("./proxydns.js");
    expect(dnsServersOf(cfg)).to.deep.equal(cfg.dnsServers);
    expect(() => dnsServersOf({ dnsServers: undefined }, "/nonexistent/resolv.conf")).to.throw(/NSM_DNS_SERVERS is unset/);
    expect(() => config.parse({ NSM_DNS_SERVERS: "dns.example" })).to.throw(/^NSM_DNS_SERVERS: invalid DNS server "dns.example"/);
    expect(() => config.parse({ NSM_REGISTRY_MODE: "mirror" })).to.throw(/^NSM_REGISTRY_MODE: /);
  });

  it("names the variable of each bad value", () => {
    const bad: Record<string, string> = {
      NSM_LISTEN_ON: "http://x:1",
      NSM_REGISTRY_STORE: "redis://x:1",
      NSM_EXPIRE_PERIOD: "forever",
      NSM_MAX_TOKEN_LIFETIME: "10",
      NSM_LOG_LEVEL: "chatty",
      TELEMETRY: "on",
      NSM_METRICS_LISTEN_ON: "9090",
      NSM_REGISTRARS: "nsmgr-*",
      NSM_RESOURCES_ADMINS: "spiffe://td/ops,admin",
      NSM_CONNECT_LISTEN_ON: "5003",
      NSM_RESOURCES_DNS_LISTEN_ON: "localhost:53",
      NSM_NODE_HEARTBEAT_TIMEOUT: "soon",
    };
    for (const [name, value] of Object.entries(bad)) {
      expect(() => config.parse({ [name]: value }), name).to.throw(new RegExp(`^${name}: `));
    }
    expect(() => config.parse({ NSM_REGISTRY_STORE: "etcd://" })).to.throw(/^NSM_REGISTRY_STORE: invalid etcd endpoint ""/);
    expect(() => config.parse({ NSM_REGISTRARS: "spiffe://td/nsmgr-*, ," })).to.not.throw();
    expect(() => config.parse({ NSM_REGISTRARS: " , " })).to.throw(/^NSM_REGISTRARS: expected at least one SPIFFE ID pattern/);
    expect(() => config.parse({ NSM_REGISTRARS: "spiffe://td/a b" })).to.throw(
      /^NSM_REGISTRARS: invalid SPIFFE ID pattern "spiffe:\/\/td\/a b"/,
    );
    expect(() => config.parse({ NSM_RESOURCES_ADMINS: "spiffe://td/ops,admin" })).to.throw(
      /^NSM_RESOURCES_ADMINS: invalid SPIFFE ID "admin"/,
    );
    expect(() => config.parse({ NSM_TLS_CERT_FILE: "/c.pem", NSM_TLS_KEY_FILE: "/k.pem" })).to.throw(
      /^NSM_TLS_CA_FILE: .*must be set together or not at all/,
    );
  });

  describeProgramProcess({
    program,
    bin,
    config,
    readme: new URL("../README.md", import.meta.url),
    validEnv,
    badVariable: {
      env: { NSM_EXPIRE_PERIOD: "soon" },
      line: `${program}: NSM_EXPIRE_PERIOD: invalid duration "soon": expected e.g. 500ms, 15s, 1m30s, 10m or 1h`,
    },
  });
});
