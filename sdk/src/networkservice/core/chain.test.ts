import { create } from "@bufbuild/protobuf";
import { ConnectionSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { StepRecorder } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { chain, handler } from "./index.js";

describe("chain", () => {
  it("runs requests in order and responses in reverse order", async () => {
    const rec = new StepRecorder();
    const h = handler(chain(rec.element("a"), chain(rec.element("b"), rec.element("c"))));
    const req = create(NetworkServiceRequestSchema, { connection: { id: "x" } });
    const conn = await h.request(CallContext.create(), req);
    expect(conn.id).to.equal("x");
    expect(rec.steps).to.deep.equal(["a:request", "b:request", "c:request", "c:request-done", "b:request-done", "a:request-done"]);
    await h.close(CallContext.create(), create(ConnectionSchema, { id: "x" }));
    expect(rec.steps.slice(6)).to.deep.equal(["a:close", "b:close", "c:close"]);
  });

  it("binds a composed chain to different tails independently", async () => {
    const rec = new StepRecorder();
    const inner = chain(rec.element("a"));
    const ends: string[] = [];
    const tailA = {
      request: async () => {
        ends.push("A");
        return create(ConnectionSchema);
      },
      close: async () => {},
    };
    const tailB = {
      request: async () => {
        ends.push("B");
        return create(ConnectionSchema);
      },
      close: async () => {},
    };
    const req = create(NetworkServiceRequestSchema, {});
    await handler(inner, tailA).request(CallContext.create(), req);
    await handler(inner, tailB).request(CallContext.create(), req);
    expect(ends).to.deep.equal(["A", "B"]);
  });

  it("gives elements an immutable context: values set by one element reach only the elements after it", async () => {
    const { ContextKey } = await import("@nsm-ts/base/context");
    const key = new ContextKey<string>("k");
    const seen: Array<string | undefined> = [];
    const h = handler(
      chain(
        {
          name: "probe1",
          request: (ctx, r, n) => {
            seen.push(key.get(ctx));
            return n.request(ctx, r);
          },
          close: (c, x, n) => n.close(c, x),
        },
        { name: "set", request: (ctx, r, n) => n.request(ctx.with(key, "v"), r), close: (c, x, n) => n.close(c, x) },
        {
          name: "probe2",
          request: (ctx, r, n) => {
            seen.push(key.get(ctx));
            return n.request(ctx, r);
          },
          close: (c, x, n) => n.close(c, x),
        },
      ),
    );
    await h.request(CallContext.create(), create(NetworkServiceRequestSchema, {}));
    expect(seen).to.deep.equal([undefined, "v"]);
  });
});
