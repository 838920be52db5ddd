/**
 * A node drain: SIGTERM reaches every program at once (registry, nsmgr, forwarder, endpoint, client). Each exits
 * 0 within 2 s, although the nsmgr its forwarder and endpoint would unregister through is going away too.
 */
import { expect } from "chai";
import { type Program, type ProgramSet, startEndpoint, startNode, startRegistry, useProgramSet } from "./harness.js";

describe("programs: node drain", function () {
  this.timeout(60_000);
  let set: ProgramSet;
  useProgramSet((s) => {
    set = s;
  });

  it("SIGTERM to every program at once: each exits 0 within 2 s", async () => {
    const { registry, url } = await startRegistry(set);
    const node = await startNode(set, 1, url);
    const nse = await startEndpoint(set, "nse-drain", node.socket, "svc-drain");
    const nsc = await set.start(
      "cmd-nsc",
      { NSM_NAME: "nsc-drain", NSM_CONNECT_TO: node.socket, NSM_NETWORK_SERVICES: "noop://svc-drain" },
      "connected",
      "nsc-drain",
    );
    const all: Program[] = [nsc, nse, node.forwarder, node.nsmgr, registry];
    const started = Date.now();
    const exits = await Promise.all(
      all.map(async (p) => {
        const r = await p.stop("SIGTERM");
        return { name: p.name, ...r, ms: Date.now() - started };
      }),
    );
    for (const e of exits) {
      expect({ name: e.name, code: e.code, signal: e.signal }).to.deep.equal({ name: e.name, code: 0, signal: null });
      expect(e.ms, `${e.name} took ${e.ms} ms to exit`).to.be.below(2000);
    }
  });
});
