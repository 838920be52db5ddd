import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { silentLogger } from "@nsm-ts/base/log";
import { describeProgramProcess } from "@nsm-ts/testing/program";
import { expect } from "chai";
import { config } from "./config.js";
import { parseIpMap, watchIpMap } from "./ipmap.js";
import { publishedUrl } from "./run.js";

const program = "cmd-nsmgr-proxy";
const bin = fileURLToPath(new URL(`../bin/${program}.js`, import.meta.url));
/** A valid environment for the process tests (no well-known ports, no map file in the working directory). */
const validEnv: Record<string, string> = { NSM_LISTEN_ON: "tcp://127.0.0.1:0", NSM_MAP_IP_FILE_PATH: "/nonexistent/map-ip.yaml" };

describe(`${program} config`, () => {
  it("has upstream defaults", () => {
    const cfg = config.parse({});
    expect(cfg).to.deep.include({
      listenOn: ["tcp://:5004"],
      publishedUrl: undefined,
      registryUrl: "tcp://registry:5002",
      registryProxyUrl: "tcp://registry-proxy-dns:5003",
      mapIpFilePath: "map-ip.yaml",
      dialTimeout: 750,
      requestTimeout: 15_000,
    });
    expect(cfg.name).to.match(/^nsmgr-proxy-.+/);
  });

  it("names the variable of each bad value", () => {
    const bad: Record<string, string> = {
      NSM_LISTEN_ON: "tcp://nope",
      NSM_PUBLISHED_URL: "proxy:5004",
      NSM_REGISTRY_URL: "localhost:5002",
      NSM_REGISTRY_PROXY_URL: "http://x:1",
      NSM_DIAL_TIMEOUT: "1",
      NSM_TRUSTED_HOPS: "nsmgr-*",
    };
    for (const [name, value] of Object.entries(bad)) {
      expect(() => config.parse({ [name]: value }), name).to.throw(new RegExp(`^${name}: `));
    }
  });

  it("publishes NSM_PUBLISHED_URL, else the first tcp URL bound; without tcp it refuses to start", () => {
    expect(publishedUrl(["tcp://127.0.0.1:5004"])).to.equal("tcp://127.0.0.1:5004");
    expect(publishedUrl(["tcp://127.0.0.1:5004"], "tcp://203.0.113.5:5004")).to.equal("tcp://203.0.113.5:5004");
    expect(publishedUrl(["tcp://:5004"])).to.match(/^tcp:\/\/\d+\.\d+\.\d+\.\d+:5004$/);
    expect(() => publishedUrl(["unix:///tmp/p.sock"])).to.throw(/NSM_PUBLISHED_URL is unset/);
  });

  it("map-ip file: a YAML mapping, re-read when it changes, empty when missing or broken", async () => {
    expect(parseIpMap("10.0.0.5: 203.0.113.5\n'fd00::1': 'fd00::2'\n")).to.deep.equal({ "10.0.0.5": "203.0.113.5", "fd00::1": "fd00::2" });
    expect(parseIpMap("")).to.deep.equal({});
    expect(() => parseIpMap("- a\n- b\n")).to.throw(/mapping/);
    const dir = mkdtempSync(join(tmpdir(), "nsm-mapip-"));
    const file = join(dir, "map-ip.yaml");
    let mapped: () => void = () => {};
    const loaded = new Promise<void>((resolve) => {
      mapped = resolve;
    });
    const m = watchIpMap(file, silentLogger, (map) => {
      if (map["10.0.0.5"] !== undefined) mapped();
    });
    try {
      expect(m.current()).to.deep.equal({});
      writeFileSync(file, "10.0.0.5: 203.0.113.5\n");
      await loaded; // the watch event itself, not a fixed wait
      expect(m.current()).to.deep.equal({ "10.0.0.5": "203.0.113.5" });
    } finally {
      m.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describeProgramProcess({
    program,
    bin,
    config,
    readme: new URL("../README.md", import.meta.url),
    validEnv,
    badVariable: {
      env: { ...validEnv, NSM_REGISTRY_PROXY_URL: "registry-proxy:5003" },
      line: `${program}: NSM_REGISTRY_PROXY_URL: invalid URL "registry-proxy:5003": expected tcp://host:port or unix:///path`,
    },
  });
});
