import { create } from "@bufbuild/protobuf";
import { ConnectionSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { newCheck } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { chain, handler } from "../../core/index.js";
import { newClient, urlKey } from "./index.js";

describe("clienturl", () => {
  it("sets the next-hop URL for the elements after it on Request and Close", async () => {
    const seen: string[] = [];
    const probe = (ctx: CallContext): void => {
      seen.push(urlKey.get(ctx)?.href ?? "none");
    };
    const h = handler(chain(newClient("unix:///tmp/nsm.sock"), newCheck({ beforeRequest: probe, beforeClose: probe })));
    await h.request(CallContext.create(), create(NetworkServiceRequestSchema, { connection: { id: "1" } }));
    await h.close(CallContext.create(), create(ConnectionSchema, { id: "1" }));
    expect(seen).to.deep.equal(["unix:///tmp/nsm.sock", "unix:///tmp/nsm.sock"]);
  });
  it("rejects an invalid URL at construction", () => {
    expect(() => newClient("not a url")).to.throw(/clienturl-client: invalid URL/);
  });
});
