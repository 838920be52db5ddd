import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  DestinationSchema,
  MatchSchema,
  NetworkServiceEndpointSchema,
  NetworkServiceLabelsSchema,
  NetworkServiceSchema,
} from "@nsm-ts/api/registry";
import { expect } from "chai";
import { matchNetworkService, matchNetworkServiceEndpoint } from "./index.js";

const ns = (init: Parameters<typeof create<typeof NetworkServiceSchema>>[1] = {}) => create(NetworkServiceSchema, init);
const nse = (init: Parameters<typeof create<typeof NetworkServiceEndpointSchema>>[1] = {}) => create(NetworkServiceEndpointSchema, init);
const labels = (l: Record<string, string>) => create(NetworkServiceLabelsSchema, { labels: l });
const match = (src: Record<string, string>, dst: Record<string, string>) =>
  create(MatchSchema, { sourceSelector: src, routes: [create(DestinationSchema, { destinationSelector: dst })] });

describe("registry/store matching (upstream's Find template rules)", () => {
  describe("matchNetworkService", () => {
    const candidate = ns({ name: "icmp", payload: "ETHERNET", matches: [match({ app: "a" }, { role: "x" })] });

    it("an empty template matches everything", () => {
      expect(matchNetworkService(ns(), candidate)).to.equal(true);
    });
    it("name: empty or equal (not a substring)", () => {
      expect(matchNetworkService(ns({ name: "icmp" }), candidate)).to.equal(true);
      expect(matchNetworkService(ns({ name: "icm" }), candidate)).to.equal(false);
      expect(matchNetworkService(ns({ name: "other" }), candidate)).to.equal(false);
    });
    it("payload: empty or equal", () => {
      expect(matchNetworkService(ns({ payload: "ETHERNET" }), candidate)).to.equal(true);
      expect(matchNetworkService(ns({ payload: "IP" }), candidate)).to.equal(false);
    });
    it("matches: empty or deep-equal", () => {
      expect(matchNetworkService(ns({ matches: [match({ app: "a" }, { role: "x" })] }), candidate)).to.equal(true);
      expect(matchNetworkService(ns({ matches: [match({ app: "a" }, { role: "y" })] }), candidate)).to.equal(false);
      expect(matchNetworkService(ns({ matches: [match({ app: "b" }, { role: "x" })] }), candidate)).to.equal(false);
      const two = [match({ app: "a" }, { role: "x" }), match({}, {})];
      expect(matchNetworkService(ns({ matches: two }), candidate)).to.equal(false);
      const fallthrough = create(MatchSchema, { ...match({ app: "a" }, { role: "x" }), fallthrough: true });
      expect(matchNetworkService(ns({ matches: [fallthrough] }), candidate)).to.equal(false);
    });
    it("all given fields must hold together", () => {
      expect(matchNetworkService(ns({ name: "icmp", payload: "IP" }), candidate)).to.equal(false);
      expect(matchNetworkService(ns({ name: "icmp", payload: "ETHERNET" }), candidate)).to.equal(true);
    });
  });

  describe("matchNetworkServiceEndpoint", () => {
    const candidate = nse({
      name: "nse-1",
      networkServiceNames: ["icmp", "vl3"],
      networkServiceLabels: { icmp: labels({ app: "a", zone: "z1" }), vl3: labels({}) },
      url: "tcp://198.51.100.7:5003",
      expirationTime: timestampFromMs(Date.UTC(2026, 0, 1, 0, 1, 0, 250)),
    });

    it("an empty template matches everything", () => {
      expect(matchNetworkServiceEndpoint(nse(), candidate)).to.equal(true);
    });
    it("name: empty or equal", () => {
      expect(matchNetworkServiceEndpoint(nse({ name: "nse-1" }), candidate)).to.equal(true);
      expect(matchNetworkServiceEndpoint(nse({ name: "nse" }), candidate)).to.equal(false);
    });
    it("labels: every template k=v of every template service present in the candidate", () => {
      const t = (l: Record<string, ReturnType<typeof labels>>) => nse({ networkServiceLabels: l });
      expect(matchNetworkServiceEndpoint(t({ icmp: labels({ app: "a" }) }), candidate)).to.equal(true);
      expect(matchNetworkServiceEndpoint(t({ icmp: labels({ app: "a", zone: "z1" }) }), candidate)).to.equal(true);
      expect(matchNetworkServiceEndpoint(t({ icmp: labels({ app: "b" }) }), candidate)).to.equal(false);
      expect(matchNetworkServiceEndpoint(t({ icmp: labels({ app: "a", extra: "1" }) }), candidate)).to.equal(false);
      expect(matchNetworkServiceEndpoint(t({ vl3: labels({ app: "a" }) }), candidate)).to.equal(false);
      expect(matchNetworkServiceEndpoint(t({ vl3: labels({}) }), candidate)).to.equal(true);
      // A service named in the template must be present in the candidate's labels map (upstream behaviour).
      expect(matchNetworkServiceEndpoint(t({ other: labels({}) }), candidate)).to.equal(false);
    });
    it("expiration: unset or the same seconds (nanos ignored)", () => {
      const same = nse({ expirationTime: timestampFromMs(Date.UTC(2026, 0, 1, 0, 1, 0, 900)) });
      const other = nse({ expirationTime: timestampFromMs(Date.UTC(2026, 0, 1, 0, 1, 1, 250)) });
      expect(matchNetworkServiceEndpoint(same, candidate)).to.equal(true);
      expect(matchNetworkServiceEndpoint(other, candidate)).to.equal(false);
      // A candidate without expiration has 0 seconds.
      expect(matchNetworkServiceEndpoint(nse({ expirationTime: timestampFromMs(0) }), nse({ name: "x" }))).to.equal(true);
    });
    it("service names: every template name contained in the candidate's list", () => {
      expect(matchNetworkServiceEndpoint(nse({ networkServiceNames: ["icmp"] }), candidate)).to.equal(true);
      expect(matchNetworkServiceEndpoint(nse({ networkServiceNames: ["vl3", "icmp"] }), candidate)).to.equal(true);
      expect(matchNetworkServiceEndpoint(nse({ networkServiceNames: ["icmp", "other"] }), candidate)).to.equal(false);
    });
    it("url: empty or a substring of the candidate url", () => {
      expect(matchNetworkServiceEndpoint(nse({ url: "198.51.100.7" }), candidate)).to.equal(true);
      expect(matchNetworkServiceEndpoint(nse({ url: "tcp://198.51.100.7:5003" }), candidate)).to.equal(true);
      expect(matchNetworkServiceEndpoint(nse({ url: "198.51.100.8" }), candidate)).to.equal(false);
    });
    it("all given fields must hold together", () => {
      expect(matchNetworkServiceEndpoint(nse({ name: "nse-1", url: "nope" }), candidate)).to.equal(false);
      expect(
        matchNetworkServiceEndpoint(
          nse({ name: "nse-1", networkServiceNames: ["icmp"], url: ":5003", networkServiceLabels: { icmp: labels({ zone: "z1" }) } }),
          candidate,
        ),
      ).to.equal(true);
    });
  });
});
