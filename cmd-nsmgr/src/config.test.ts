import { fileURLToPath } from "node:url";
import { spiffeIdMatcher } from "@nsm-ts/base/policy";
import { describeProgramProcess } from "@nsm-ts/testing/program";
import { expect } from "chai";
import { config } from "./config.js";

const program = "cmd-nsmgr";
const bin = fileURLToPath(new URL(`../bin/${program}.js`, import.meta.url));
/** A valid environment for the process tests (it must not bind well-known ports once run.ts serves). */
const validEnv: Record<string, string> = { NSM_LISTEN_ON: "tcp://127.0.0.1:0" };

describe(`${program} config`, () => {
  it("has upstream defaults", () => {
    const cfg = config.parse({});
    expect(cfg).to.deep.include({
      listenOn: ["unix:///var/lib/networkservicemesh/nsm.io.sock", "tcp://:5001"],
      registryUrl: "tcp://127.0.0.1:5002",
      forwarderNetworkServiceName: "forwarder",
      dialTimeout: 750,
      requestTimeout: 15_000,
      maxTokenLifetime: 600_000,
      logLevel: "info",
      podName: undefined,
      clusterName: undefined,
    });
    expect(cfg.name).to.match(/^nsmgr-.+/);
    expect(cfg.nodeName).to.be.a("string").and.not.equal("");
  });

  it("reads given values", () => {
    const cfg = config.parse({
      NSM_LISTEN_ON: "unix:///tmp/nsm.sock",
      NSM_REGISTRY_URL: "tcp://[::1]:5002",
      NODE_NAME: "node-1",
      POD_NAME: "nsmgr-abc",
      CLUSTER_NAME: "c1",
      NSM_FORWARDER_NETWORK_SERVICE_NAME: "fwd",
      NSM_DIAL_TIMEOUT: "1s",
      NSM_REQUEST_TIMEOUT: "1m30s",
      NSM_LOG_LEVEL: "TRACE",
    });
    expect(cfg).to.deep.include({
      listenOn: ["unix:///tmp/nsm.sock"],
      registryUrl: "tcp://[::1]:5002",
      nodeName: "node-1",
      podName: "nsmgr-abc",
      clusterName: "c1",
      forwarderNetworkServiceName: "fwd",
      dialTimeout: 1000,
      requestTimeout: 90_000,
      logLevel: "trace",
    });
  });

  it("NSM_TRUSTED_HOPS: unset keeps the nsmgr/forwarder rule; a pattern list replaces it", () => {
    expect(config.parse({}).trustedHops).to.equal(undefined);
    const cfg = config.parse({ NSM_TRUSTED_HOPS: "spiffe://td/ns/nsm-system/sa/*, spiffe://td/nse-firewall" });
    // What run.ts passes to the nsmgr's authorize.
    const rule = spiffeIdMatcher(cfg.trustedHops ?? []);
    expect(rule("spiffe://td/ns/nsm-system/sa/forwarder-vpp")).to.equal(true);
    expect(rule("spiffe://td/nse-firewall")).to.equal(true);
    expect(rule("spiffe://td/nsmgr-node1"), "the built-in rule no longer applies").to.equal(false);
    expect(() => config.parse({ NSM_TRUSTED_HOPS: " , " })).to.throw(/^NSM_TRUSTED_HOPS: expected at least one SPIFFE ID pattern/);
  });

  it("names the variable of each bad value", () => {
    const bad: Record<string, string> = {
      NSM_LISTEN_ON: "unix:///ok.sock,tcp://nope",
      NSM_REGISTRY_URL: "localhost:5002",
      NSM_DIAL_TIMEOUT: "1",
      NSM_REQUEST_TIMEOUT: "-1s",
      NSM_MAX_TOKEN_LIFETIME: "10 m",
      NSM_LOG_LEVEL: "chatty",
      TELEMETRY: "on",
      NSM_OPEN_TELEMETRY_ENDPOINT: "collector",
      NSM_TRUSTED_HOPS: "nsmgr-*",
    };
    for (const [name, value] of Object.entries(bad)) {
      expect(() => config.parse({ [name]: value }), name).to.throw(new RegExp(`^${name}: `));
    }
    expect(() => config.parse({ NSM_TLS_KEY_FILE: "/k.pem" })).to.throw(/^NSM_TLS_CERT_FILE: .*must be set together or not at all/);
  });

  describeProgramProcess({
    program,
    bin,
    config,
    readme: new URL("../README.md", import.meta.url),
    validEnv,
    badVariable: {
      env: { ...validEnv, NSM_REGISTRY_URL: "registry:5002" },
      line: `${program}: NSM_REGISTRY_URL: invalid URL "registry:5002": expected tcp://host:port or unix:///path`,
    },
  });
});
