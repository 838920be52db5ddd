import { create } from "@bufbuild/protobuf";
import { NetworkServiceRequestSchema, PathSegmentSchema } from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { expect } from "chai";
import { chain, handler, type NetworkServiceElement } from "../../core/index.js";
import * as updatepath from "../updatepath/index.js";
import * as trimpath from "./index.js";

/** Pretends to be the next hop: appends its segment to the path (as a real one's response would). */
const nextHop: NetworkServiceElement = {
  name: "next-hop",
  async request(ctx, r, n) {
    const conn = await n.request(ctx, r);
    conn.path?.pathSegments.push(create(PathSegmentSchema, { name: "downstream", id: "d" }));
    return conn;
  },
  close: (ctx, c, n) => n.close(ctx, c),
};

/** A request whose path still carries a stale segment after ours (e.g. from before a reselect). */
const staleRequest = () =>
  create(NetworkServiceRequestSchema, {
    connection: {
      id: "a",
      path: {
        index: 0,
        pathSegments: [
          { name: "nsc", id: "a" },
          { name: "nse", id: "b" },
          { name: "stale", id: "c" },
        ],
      },
    },
  });

describe("trimpath", () => {
  it("the final endpoint trims the segments after its own", async () => {
    const h = handler(chain(updatepath.newServer("nse"), trimpath.newServer()));
    const conn = await h.request(CallContext.create(), staleRequest());
    expect(conn.path?.pathSegments.map((s) => s.name)).to.deep.equal(["nsc", "nse"]);
    expect(conn.path?.index).to.equal(0);
  });

  it("a passthrough endpoint (client part after it) keeps the full path", async () => {
    const h = handler(chain(updatepath.newServer("nse"), trimpath.newServer(), trimpath.newClient(), nextHop));
    const conn = await h.request(CallContext.create(), staleRequest());
    expect(conn.path?.pathSegments.map((s) => s.name)).to.deep.equal(["nsc", "nse", "stale", "downstream"]);
  });

  it("the marker does not leak to the next hop's server chain", async () => {
    let seen: trimpath.TrimMarker | undefined = { trim: true };
    const probe: NetworkServiceElement = {
      name: "probe",
      request: (ctx, r, n) => {
        seen = trimpath.trimMarkerKey.get(ctx);
        return n.request(ctx, r);
      },
      close: (ctx, c, n) => n.close(ctx, c),
    };
    const h = handler(chain(updatepath.newServer("nse"), trimpath.newServer(), trimpath.newClient(), probe));
    await h.request(CallContext.create(), staleRequest());
    expect(seen).to.equal(undefined);
  });
});
