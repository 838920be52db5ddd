import { fileURLToPath } from "node:url";
import { describeProgramProcess } from "@nsm-ts/testing/program";
import { expect } from "chai";
import { config, statusConfig } from "./config.js";
import { parseStatusArgs } from "./status-cli.js";

const program = "cmd-traffic-controller";
const bin = fileURLToPath(new URL(`../bin/${program}.js`, import.meta.url));

describe(`${program} config`, () => {
  it("has defaults", () => {
    const cfg = config.parse({});
    expect(cfg).to.deep.include({
      listenOn: ["tcp://:5090"],
      httpListenOn: "tcp://:5080",
      store: { kind: "memory" },
      backoffInitial: 1_000,
      backoffMax: 300_000,
      lockTtl: 10_000,
    });
    expect(config.parse({ NSM_HTTP_LISTEN_ON: "off" }).httpListenOn).to.equal(undefined);
    expect(config.parse({ NSM_INTENTS_STORE: "etcd://127.0.0.1:2379,[::1]:2379" }).store).to.deep.equal({
      kind: "etcd",
      endpoints: ["127.0.0.1:2379", "[::1]:2379"],
    });
    expect(statusConfig.parse({}).url).to.equal("tcp://127.0.0.1:5090");
  });

  it("names the variable of each bad value", () => {
    const bad: Record<string, string> = {
      NSM_LISTEN_ON: "http://x:1",
      NSM_HTTP_LISTEN_ON: "5080",
      NSM_INTENTS_STORE: "redis://x:1",
      NSM_DELIVERY_BACKOFF_INITIAL: "soon",
      NSM_DELIVERY_LOCK_TTL: "10",
    };
    for (const [name, value] of Object.entries(bad)) expect(() => config.parse({ [name]: value }), name).to.throw(new RegExp(`^${name}: `));
    expect(() => config.parse({ NSM_DELIVERY_BACKOFF_INITIAL: "10m", NSM_DELIVERY_BACKOFF_MAX: "1m" })).to.throw(
      /^NSM_DELIVERY_BACKOFF_MAX: must not be shorter/,
    );
  });

  it("status arguments", () => {
    expect(parseStatusArgs(["--cluster", "edge-a", "--json"])).to.deep.equal({
      cluster: "edge-a",
      group: "",
      intent: "",
      json: true,
      watch: false,
    });
    expect(() => parseStatusArgs(["--cluster"])).to.throw(/--cluster needs a value/);
    expect(() => parseStatusArgs(["--bogus"])).to.throw(/unknown argument "--bogus"/);
  });

  describeProgramProcess({
    program,
    bin,
    config,
    readme: new URL("../README.md", import.meta.url),
    validEnv: { NSM_LISTEN_ON: "tcp://127.0.0.1:0", NSM_HTTP_LISTEN_ON: "tcp://127.0.0.1:0" },
    badVariable: {
      env: { NSM_DELIVERY_BACKOFF_INITIAL: "soon" },
      line: `${program}: NSM_DELIVERY_BACKOFF_INITIAL: invalid duration "soon": expected e.g. 500ms, 15s, 1m30s, 10m or 1h`,
    },
  });
});
