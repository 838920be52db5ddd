/** parseUrl: the tcp:// and unix:// URLs of the typed layer as grpc-js targets. */
import { expect } from "chai";
import { Code, StatusError } from "../status/index.js";
import { parseUrl } from "./index.js";

describe("grpc typed layer", () => {
  describe("parseUrl", () => {
    it("maps tcp and unix URLs to grpc-js targets", () => {
      expect(parseUrl("tcp://127.0.0.1:5002")).to.deep.equal({
        scheme: "tcp",
        host: "127.0.0.1",
        port: 5002,
        grpcTarget: "127.0.0.1:5002",
      });
      expect(parseUrl("tcp://:5002")).to.deep.equal({ scheme: "tcp", host: "", port: 5002, grpcTarget: "0.0.0.0:5002" });
      expect(parseUrl("tcp://[::1]:0").grpcTarget).to.equal("[::1]:0");
      expect(parseUrl("tcp://localhost:1")).to.include({ host: "localhost", port: 1 });
      expect(parseUrl("unix:///var/lib/nsm.sock")).to.deep.equal({
        scheme: "unix",
        path: "/var/lib/nsm.sock",
        grpcTarget: "unix:///var/lib/nsm.sock",
      });
    });
    it("rejects anything else with InvalidArgument", () => {
      for (const bad of ["", "127.0.0.1:80", "http://h:1", "tcp://h", "tcp://h:99999", "unix://relative.sock", "tcp://h:1/x"]) {
        expect(() => parseUrl(bad), bad)
          .to.throw(StatusError)
          .with.property("code", Code.InvalidArgument);
      }
    });
  });
});
