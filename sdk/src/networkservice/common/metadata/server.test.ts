import { create } from "@bufbuild/protobuf";
import { ConnectionSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { CallContext, MetaKey } from "@nsm-ts/base/context";
import { expect } from "chai";
import { chain, handler, type NetworkServiceElement } from "../../core/index.js";
import * as metadata from "./index.js";

const key = new MetaKey<number>("test.counter");

/** Counts requests per connection in the server half of the store. */
const counting: NetworkServiceElement = {
  name: "counting",
  request(ctx, r, n) {
    ctx.metadata.server.set(key, (ctx.metadata.server.get(key) ?? 0) + 1);
    return n.request(ctx, r);
  },
  close: (ctx, c, n) => n.close(ctx, c),
};

function req(id: string) {
  return create(NetworkServiceRequestSchema, { connection: { id } });
}

describe("metadata", () => {
  it("keeps one store per connection from Request until Close", async () => {
    const sizes: number[] = [];
    const md = metadata.newServer({ onSize: (n) => sizes.push(n) });
    let seenOnClose: number | undefined;
    const h = handler(
      chain(md, counting, {
        name: "probe",
        request: (ctx, r, n) => n.request(ctx, r),
        close(ctx, c, n) {
          seenOnClose = ctx.metadata.server.get(key);
          return n.close(ctx, c);
        },
      }),
    );
    await h.request(CallContext.create(), req("a"));
    await h.request(CallContext.create(), req("a"));
    await h.request(CallContext.create(), req("b"));
    expect(md.size()).to.equal(2);
    await h.close(CallContext.create(), create(ConnectionSchema, { id: "a" }));
    expect(seenOnClose).to.equal(2);
    expect(md.size()).to.equal(1);
    // A new request under the same id starts with a fresh store.
    await h.request(CallContext.create(), req("a"));
    await h.close(CallContext.create(), create(ConnectionSchema, { id: "a" }));
    expect(seenOnClose).to.equal(1);
    await h.close(CallContext.create(), create(ConnectionSchema, { id: "b" }));
    expect(md.size()).to.equal(0);
    expect(sizes).to.deep.equal([1, 2, 1, 2, 1, 0]);
  });

  it("drops the store of a connection whose first request failed, but keeps it when a refresh fails", async () => {
    const md = metadata.newServer();
    let fail = false;
    const h = handler(
      chain(md, counting, {
        name: "maybe-fail",
        request: async (ctx, r, n) => {
          if (fail) throw new Error("boom");
          return n.request(ctx, r);
        },
        close: (ctx, c, n) => n.close(ctx, c),
      }),
    );
    fail = true;
    await h.request(CallContext.create(), req("a")).catch(() => undefined);
    expect(md.size()).to.equal(0);
    fail = false;
    await h.request(CallContext.create(), req("a"));
    fail = true;
    await h.request(CallContext.create(), req("a")).catch(() => undefined);
    expect(md.size()).to.equal(1);
    await h.close(CallContext.create(), create(ConnectionSchema, { id: "a" }));
    expect(md.size()).to.equal(0);
  });

  it("frees the store even when the rest of the chain fails on Close", async () => {
    const md = metadata.newServer();
    const h = handler(
      chain(md, {
        name: "close-fails",
        request: (ctx, r, n) => n.request(ctx, r),
        close: async () => {
          throw new Error("boom");
        },
      }),
    );
    await h.request(CallContext.create(), req("a"));
    await h.close(CallContext.create(), create(ConnectionSchema, { id: "a" })).catch(() => undefined);
    expect(md.size()).to.equal(0);
  });
});
