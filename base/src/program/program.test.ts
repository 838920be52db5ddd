import { existsSync } from "node:fs";
/**
 * programIdentity's choice of identity source (SPIFFE_ENDPOINT_SOCKET, then NSM_TLS_* files, then the dev mode) and
 * the lifetime of the Workload API stream it opens.
 */
import { PassThrough } from "node:stream";
import { TestPki } from "@nsm-ts/testing/pki";
import { TestWorkloadApi } from "@nsm-ts/testing/spiffe";
import { expect } from "chai";
import { createLogger, type Logger } from "../log/index.js";
import { listenTarget, programIdentity } from "./index.js";

describe("programIdentity: identity sources", function () {
  this.timeout(20_000);
  let pki: TestPki;
  let api: TestWorkloadApi;
  let lines: string[];
  let log: Logger;

  beforeEach(async () => {
    pki = new TestPki("program-ca");
    api = await TestWorkloadApi.start(pki, { spiffeId: "spiffe://test.com/nsmgr-1" });
    lines = [];
    const out = new PassThrough({ encoding: "utf8" });
    out.on("data", (s: string) => lines.push(s));
    log = createLogger({ destination: out });
  });
  afterEach(async () => {
    await api.close();
    pki.remove();
  });

  it("SPIFFE_ENDPOINT_SOCKET wins over NSM_TLS_* (with a warning), and the program's signal ends the stream", async () => {
    const files = pki.leaf("files", { san: "URI:spiffe://test.com/from-files" });
    const life = new AbortController();
    const id = await programIdentity(
      "cmd-x",
      {
        name: "x",
        maxTokenLifetime: 60_000,
        spiffeEndpointSocket: api.url,
        tlsCertFile: files.certFile,
        tlsKeyFile: files.keyFile,
        tlsCaFile: pki.caFile,
      },
      log,
      { signal: life.signal },
    );
    expect(id.identity.spiffeId).to.equal("spiffe://test.com/nsmgr-1");
    expect(id.insecure).to.equal(false);
    expect(id.serverOptions.tls).to.equal(id.identity.tls);
    expect(id.dialOptions.tls).to.equal(id.identity.tls);
    expect(lines.join("")).to.contain("NSM_TLS_CERT_FILE/NSM_TLS_KEY_FILE/NSM_TLS_CA_FILE are ignored");
    // The stream stays open while the program lives; the program's signal ends it.
    await api.untilOpen(1);
    life.abort(new Error("test over"));
    await api.untilOpen(0);
    expect(api.fetches).to.equal(1);
  });

  it("without the socket: certificate files, and without them the dev mode", async () => {
    const files = pki.leaf("files", { san: "URI:spiffe://test.com/from-files" });
    const fromFiles = await programIdentity(
      "cmd-x",
      { name: "x", maxTokenLifetime: 60_000, tlsCertFile: files.certFile, tlsKeyFile: files.keyFile, tlsCaFile: pki.caFile },
      log,
    );
    expect(fromFiles.identity.spiffeId).to.equal("spiffe://test.com/from-files");
    const dev = await programIdentity("cmd-x", { name: "x", maxTokenLifetime: 60_000 }, log);
    expect(dev.insecure).to.equal(true);
    expect(lines.join("")).to.contain("insecure dev mode: SPIFFE_ENDPOINT_SOCKET and NSM_TLS_CERT_FILE");
  });
});

describe("listenTarget", () => {
  it("uses NSM_LISTEN_ON when set, else a socket in a temporary folder that cleanup removes", () => {
    const given = listenTarget("tcp://127.0.0.1:5001", "nsm-x-", "x.sock");
    expect(given.url).to.equal("tcp://127.0.0.1:5001");
    given.cleanup();
    const temp = listenTarget(undefined, "nsm-x-", "x.sock");
    expect(temp.url).to.match(/^unix:\/\/.*nsm-x-[^/]+\/x\.sock$/);
    const dir = temp.url.slice("unix://".length, -"/x.sock".length);
    expect(existsSync(dir)).to.equal(true);
    temp.cleanup();
    temp.cleanup();
    expect(existsSync(dir)).to.equal(false);
  });
});
