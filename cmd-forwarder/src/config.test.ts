import { fileURLToPath } from "node:url";
import { describeProgramProcess } from "@nsm-ts/testing/program";
import { expect } from "chai";
import { config } from "./config.js";

const program = "cmd-forwarder";
const bin = fileURLToPath(new URL(`../bin/${program}.js`, import.meta.url));
/** A valid environment for the process tests (it must not bind well-known ports once run.ts serves). */
const validEnv: Record<string, string> = { NSM_LISTEN_ON: "tcp://127.0.0.1:0" };

describe(`${program} config`, () => {
  it("has upstream defaults", () => {
    const cfg = config.parse({});
    expect(cfg).to.deep.include({
      listenOn: undefined,
      connectTo: "unix:///var/lib/networkservicemesh/nsm.io.sock",
      networkServiceName: "forwarder",
      labels: { p2p: "true" },
      forwarderMechanism: "NOOP",
      tunnelIp: undefined,
      vxlanPort: 4789,
      dialTimeout: 750,
      maxTokenLifetime: 600_000,
    });
    expect(cfg.name).to.match(/^forwarder-.+/);
  });

  it("reads given values", () => {
    const cfg = config.parse({
      NSM_LISTEN_ON: "unix:///tmp/fwd.sock",
      NSM_CONNECT_TO: "unix:///tmp/nsm.sock",
      NSM_NSNAME: "fwd",
      NSM_LABELS: "p2mp:true,zone:a",
      NSM_FORWARDER_MECHANISM: "kernel",
      NSM_TUNNEL_IP: "198.51.100.10",
      NSM_VXLAN_PORT: "4790",
    });
    expect(cfg).to.deep.include({
      listenOn: "unix:///tmp/fwd.sock",
      connectTo: "unix:///tmp/nsm.sock",
      networkServiceName: "fwd",
      labels: { p2mp: "true", zone: "a" },
      forwarderMechanism: "KERNEL",
      tunnelIp: "198.51.100.10",
      vxlanPort: 4790,
    });
  });

  it("names the variable of each bad value", () => {
    const bad: Record<string, string> = {
      NSM_LISTEN_ON: "/tmp/fwd.sock",
      NSM_CONNECT_TO: "tcp://nsmgr",
      NSM_LABELS: "p2p",
      NSM_FORWARDER_MECHANISM: "vpp",
      NSM_TUNNEL_IP: "198.51.100.0/24",
      NSM_VXLAN_PORT: "0",
      NSM_DIAL_TIMEOUT: "fast",
      NSM_METRICS_LISTEN_ON: "unix:///m.sock",
    };
    for (const [name, value] of Object.entries(bad)) {
      expect(() => config.parse({ [name]: value }), name).to.throw(new RegExp(`^${name}: `));
    }
  });

  describeProgramProcess({
    program,
    bin,
    config,
    readme: new URL("../README.md", import.meta.url),
    validEnv,
    badVariable: {
      env: { ...validEnv, NSM_FORWARDER_MECHANISM: "vpp" },
      line: `${program}: NSM_FORWARDER_MECHANISM: invalid value "vpp": expected one of NOOP, KERNEL`,
    },
  });
});
