import { fileURLToPath } from "node:url";
import { describeProgramProcess } from "@nsm-ts/testing/program";
import { expect } from "chai";
import { config } from "./config.js";

const program = "cmd-nse-vl3";
const bin = fileURLToPath(new URL(`../bin/${program}.js`, import.meta.url));
/** Runs until signalled: nothing answers at the prefix server, so it waits for its prefix (never binds a well-known port). */
const validEnv: Record<string, string> = {
  NSM_LISTEN_ON: "tcp://127.0.0.1:0",
  NSM_CONNECT_TO: "tcp://127.0.0.1:1",
  NSM_PREFIX_SERVER_URL: "tcp://127.0.0.1:1",
};

describe(`${program} config`, () => {
  it("has upstream's names and defaults", () => {
    const cfg = config.parse({});
    expect(cfg).to.deep.include({
      listenOn: undefined,
      connectTo: "unix:///var/lib/networkservicemesh/nsm.io.sock",
      serviceNames: ["vL3"],
      labels: {},
      requestLabels: {},
      prefixServerUrls: ["tcp://registry.nsm-system:5002"],
      vl3Prefix: undefined,
      registerService: true,
      unregisterItself: true,
      requestTimeout: 15_000,
      dnsEnabled: true,
      dnsTemplates: ["{{name}}.{{networkService}}."],
      dnsPort: 53,
      maxTokenLifetime: 600_000,
      logLevel: "info",
    });
    expect(cfg.name).to.match(/^vl3-.+/);
  });

  it("reads given values and names the variable of each bad one", () => {
    const cfg = config.parse({
      NSM_NAME: "vl3-node-1",
      NSM_SERVICE_NAMES: "my-vl3",
      NSM_LABELS: "app:vl3",
      NSM_REQUEST_LABELS: "from:node-1",
      NSM_PREFIX_SERVER_URL: "tcp://198.51.100.1:5002, tcp://198.51.100.2:5002",
      NSM_VL3_PREFIX: "169.240.0.0/12",
      NSM_REGISTER_SERVICE: "false",
      NSM_UNREGISTER_ITSELF: "false",
      NSM_DNS_ENABLED: "false",
      NSM_DNS_TEMPLATES: '{{ index .Labels "podName" }}.{{ .NetworkService }}.,{{name}}.vl3.',
      NSM_DNS_PORT: "5353",
    });
    expect(cfg).to.deep.include({
      name: "vl3-node-1",
      serviceNames: ["my-vl3"],
      labels: { app: "vl3" },
      requestLabels: { from: "node-1" },
      prefixServerUrls: ["tcp://198.51.100.1:5002", "tcp://198.51.100.2:5002"],
      vl3Prefix: "169.240.0.0/12",
      registerService: false,
      unregisterItself: false,
      dnsEnabled: false,
      dnsTemplates: ['{{ index .Labels "podName" }}.{{ .NetworkService }}.', "{{name}}.vl3."],
      dnsPort: 5353,
    });
    const bad: Record<string, string> = {
      NSM_PREFIX_SERVER_URL: "registry:5002",
      NSM_VL3_PREFIX: "169.254.0.0/33",
      NSM_SERVICE_NAMES: ",",
      NSM_REQUEST_LABELS: ":x",
      NSM_UNREGISTER_ITSELF: "maybe",
      NSM_REQUEST_TIMEOUT: "1d",
      NSM_DNS_TEMPLATES: "{{nme}}.vl3.",
      NSM_DNS_PORT: "0",
    };
    for (const [name, value] of Object.entries(bad)) expect(() => config.parse({ [name]: value }), name).to.throw(new RegExp(`^${name}: `));
    // A list names the bad entry, and an empty one is no list.
    expect(() => config.parse({ NSM_PREFIX_SERVER_URL: "tcp://198.51.100.1:5002,registry:5002" })).to.throw(
      /^NSM_PREFIX_SERVER_URL: invalid URL "registry:5002"/,
    );
    expect(() => config.parse({ NSM_PREFIX_SERVER_URL: " , " })).to.throw(/^NSM_PREFIX_SERVER_URL: must list at least one value/);
  });

  describeProgramProcess({
    program,
    bin,
    config,
    readme: new URL("../README.md", import.meta.url),
    validEnv,
    badVariable: {
      env: { ...validEnv, NSM_VL3_PREFIX: "169.254.0.0/33" },
      line: `${program}: NSM_VL3_PREFIX: invalid CIDR "169.254.0.0/33": expected address/length, e.g. 169.254.0.0/16 or fd00::/64`,
    },
  });
});
