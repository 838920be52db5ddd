import { fileURLToPath } from "node:url";
import { describeProgramProcess } from "@nsm-ts/testing/program";
import { expect } from "chai";
import { config } from "./config.js";

const program = "cmd-nsc";
const bin = fileURLToPath(new URL(`../bin/${program}.js`, import.meta.url));
/** A valid environment for the process tests (it must not bind well-known ports once run.ts serves). */
const validEnv: Record<string, string> = { NSM_NETWORK_SERVICES: "kernel://icmp-responder/nsm-1" };

describe(`${program} config`, () => {
  it("has upstream defaults and needs NSM_NETWORK_SERVICES", () => {
    const cfg = config.parse({ NSM_NETWORK_SERVICES: "icmp-responder" });
    expect(cfg).to.deep.include({
      connectTo: "unix:///var/lib/networkservicemesh/nsm.io.sock",
      labels: {},
      requestTimeout: 15_000,
      dialTimeout: 5000,
      nodeName: undefined,
      podName: undefined,
      clusterName: undefined,
    });
    expect(cfg.networkServices).to.deep.equal([{ mechanism: "KERNEL", networkService: "icmp-responder", labels: {} }]);
    expect(cfg.name).to.match(/^nsc-.+/);
    expect(cfg).to.deep.include({
      localDnsServerEnabled: true,
      localDnsServerAddress: "127.0.0.1:53",
      resolvConfPath: "/etc/resolv.conf",
      dnsQueryTimeout: 5000,
    });
    // The resolver asks port 53 only: another port could never be pointed at.
    expect(() => config.parse({ NSM_NETWORK_SERVICES: "svc", NSM_LOCAL_DNS_SERVER_ADDRESS: "127.0.0.53:5353" })).to.throw(
      /^NSM_LOCAL_DNS_SERVER_ADDRESS: .*loopback ip:53/,
    );
    expect(config.parse({ NSM_NETWORK_SERVICES: "svc", NSM_LOCAL_DNS_SERVER_ADDRESS: "[::1]:53" }).localDnsServerAddress).to.equal(
      "[::1]:53",
    );
    expect(() => config.parse({})).to.throw(/^NSM_NETWORK_SERVICES: is required/);
  });

  it("backend role: off by default, needs NSM_SERVICES_URL, names the variable of a bad value", () => {
    expect(config.parse({ NSM_NETWORK_SERVICES: "svc" })).to.deep.include({
      serviceBackends: [],
      servicesUrl: undefined,
      probeInterval: 1000,
      probeTimeout: 1000,
      probeFailures: 3,
    });
    const on = { NSM_NETWORK_SERVICES: "svc", NSM_SERVICE_BACKENDS: "web:8080/tcp" };
    expect(() => config.parse(on)).to.throw(/^NSM_SERVICES_URL: is required when NSM_SERVICE_BACKENDS/);
    expect(config.parse({ ...on, NSM_SERVICES_URL: "tcp://127.0.0.1:5002" }).serviceBackends).to.deep.equal([
      { service: "web", port: 8080 },
    ]);
    expect(() => config.parse({ ...on, NSM_SERVICE_BACKENDS: "web:8080/udp" })).to.throw(/^NSM_SERVICE_BACKENDS: .*only tcp/);
    expect(() => config.parse({ ...on, NSM_SERVICE_PROBE_FAILURES: "0" })).to.throw(/^NSM_SERVICE_PROBE_FAILURES: /);
    const url = { ...on, NSM_SERVICES_URL: "tcp://127.0.0.1:5002" };
    expect(config.parse(url).serviceLease, "unset: derived from the probe").to.equal(undefined);
    expect(config.parse({ ...url, NSM_SERVICE_LEASE: "10s" }).serviceLease).to.equal(10_000);
    expect(() => config.parse({ ...url, NSM_SERVICE_LEASE: "2s" }), "not longer than interval + timeout").to.throw(/^NSM_SERVICE_LEASE: /);
    expect(() => config.parse({ ...url, NSM_SERVICE_LEASE: "2500ms" }), "not whole seconds").to.throw(/^NSM_SERVICE_LEASE: /);
    expect(() => config.parse({ ...url, NSM_SERVICE_LEASE: "25h" })).to.throw(/^NSM_SERVICE_LEASE: /);
  });

  it("reads given values", () => {
    const cfg = config.parse({
      NSM_NETWORK_SERVICES: "kernel://icmp-responder/nsm-1?app=web, noop://other@remote.example",
      NSM_LABELS: "color=red,zone:a",
      NSM_REQUEST_TIMEOUT: "5s",
      NSM_DIAL_TIMEOUT: "200ms",
      POD_NAME: "client-1",
    });
    expect(cfg.networkServices).to.deep.equal([
      { mechanism: "KERNEL", networkService: "icmp-responder", ifName: "nsm-1", labels: { app: "web" } },
      { mechanism: "NOOP", networkService: "other@remote.example", labels: {} },
    ]);
    expect(cfg).to.deep.include({ labels: { color: "red", zone: "a" }, requestTimeout: 5000, dialTimeout: 200, podName: "client-1" });
  });

  it("names the variable of each bad value", () => {
    const bad: Record<string, string> = {
      NSM_CONNECT_TO: "unix://relative.sock",
      NSM_NETWORK_SERVICES: "bogus://svc",
      NSM_LABELS: "nokey",
      NSM_REQUEST_TIMEOUT: "15",
      NSM_DIAL_TIMEOUT: "5 s",
      NSM_LOCAL_DNS_SERVER_ENABLED: "maybe",
      NSM_LOCAL_DNS_SERVER_ADDRESS: "198.51.100.1:53",
      NSM_DNS_QUERY_TIMEOUT: "5",
    };
    for (const [name, value] of Object.entries(bad)) {
      expect(() => config.parse({ NSM_NETWORK_SERVICES: "svc", [name]: value }), name).to.throw(new RegExp(`^${name}: `));
    }
    // A mechanism the URL syntax knows but this client cannot set up is a configuration error too.
    expect(() => config.parse({ NSM_NETWORK_SERVICES: "kernel://a, memif://b" })).to.throw(
      /^NSM_NETWORK_SERVICES: mechanism memif:\/\/ of "b" is not supported; use kernel:\/\/ or noop:\/\//,
    );
  });

  describeProgramProcess({
    program,
    bin,
    config,
    readme: new URL("../README.md", import.meta.url),
    validEnv,
    badVariable: {
      env: { ...validEnv, NSM_NETWORK_SERVICES: "kernel://svc/interface-name-too-long" },
      line:
        `${program}: NSM_NETWORK_SERVICES: invalid network service URL "kernel://svc/interface-name-too-long": ` +
        'interface name "interface-name-too-long" is longer than 15 characters; ' +
        "expected [mechanism://]service[@domain][/ifname][?label=value&...]",
    },
  });
});
