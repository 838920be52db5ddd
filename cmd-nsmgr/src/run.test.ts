import { expect } from "chai";
import { publishedUrl } from "./run.js";

describe("cmd-nsmgr published URL", () => {
  it("is the first tcp URL bound, a wildcard host replaced by an address of this machine", () => {
    expect(publishedUrl(["unix:///tmp/nsm.sock", "tcp://127.0.0.1:5001"])).to.equal("tcp://127.0.0.1:5001");
    expect(publishedUrl(["tcp://[::1]:5001"])).to.equal("tcp://[::1]:5001");
    const wild = publishedUrl(["unix:///tmp/nsm.sock", "tcp://:5001"]);
    expect(wild).to.match(/^tcp:\/\/\d+\.\d+\.\d+\.\d+:5001$/);
    expect(wild).to.not.equal("tcp://0.0.0.0:5001");
  });

  it("is the unix socket of a single-node mesh without tcp", () => {
    expect(publishedUrl(["unix:///tmp/nsm.sock"])).to.equal("unix:///tmp/nsm.sock");
    expect(() => publishedUrl([])).to.throw("NSM_LISTEN_ON lists no URL");
  });
});
