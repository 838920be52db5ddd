import { fileURLToPath } from "node:url";
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

  it("names the variable of each bad value", () => {
    const bad: Record<string, string> = {
      NSM_LISTEN_ON: "http://x:1",
      NSM_REGISTRY_STORE: "redis://x:1",
      NSM_EXPIRE_PERIOD: "forever",
      NSM_MAX_TOKEN_LIFETIME: "10",
      NSM_LOG_LEVEL: "chatty",
      TELEMETRY: "on",
      NSM_METRICS_LISTEN_ON: "9090",
    };
    for (const [name, value] of Object.entries(bad)) {
      expect(() => config.parse({ [name]: value }), name).to.throw(new RegExp(`^${name}: `));
    }
    expect(() => config.parse({ NSM_REGISTRY_STORE: "etcd://" })).to.throw(/^NSM_REGISTRY_STORE: invalid etcd endpoint ""/);
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
