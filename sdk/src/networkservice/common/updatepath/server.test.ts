import { clone, create } from "@bufbuild/protobuf";
import { type Connection, ConnectionSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { newCheck } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { chain, handler } from "../../core/index.js";
import * as updatepath from "./index.js";

const NSC = "nsc";
const NSE = "nse";

type Seg = { name: string; id: string };

function request(id: string, index: number | undefined, segs: Seg[] | undefined) {
  return create(NetworkServiceRequestSchema, {
    connection: {
      id,
      ...(segs === undefined ? {} : { path: { index: index ?? 0, pathSegments: segs } }),
    },
  });
}

/** Runs one request through updatepath(name) and records what the elements after it saw. */
async function run(name: string, req: ReturnType<typeof request>, side: "server" | "client" = "server") {
  let seen: Connection | undefined;
  const el = side === "server" ? updatepath.newServer(name) : updatepath.newClient(name);
  const h = handler(
    chain(
      el,
      newCheck({
        beforeRequest: (_ctx, r) => {
          seen = clone(ConnectionSchema, r.connection as Connection);
        },
      }),
    ),
  );
  const out = await h.request(CallContext.create(), req);
  return { seen: seen as Connection, out };
}

async function expectInvalid(p: Promise<unknown>, text: string): Promise<void> {
  try {
    await p;
  } catch (err) {
    expect(isStatusError(err, Code.InvalidArgument), String(err)).to.equal(true);
    expect((err as Error).message).to.contain(text);
    return;
  }
  expect.fail("expected InvalidArgument");
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("updatepath", () => {
  it("no path and no id: generates a segment with a UUIDv4 id and uses it as connection id", async () => {
    const { seen, out } = await run(NSE, request("", undefined, undefined));
    expect(seen.path?.index).to.equal(0);
    expect(seen.path?.pathSegments).to.have.length(1);
    expect(seen.path?.pathSegments[0]?.name).to.equal(NSE);
    expect(seen.id).to.match(UUID);
    expect(seen.path?.pathSegments[0]?.id).to.equal(seen.id);
    expect(out.id).to.equal(seen.id);
  });

  it("no path: keeps the given connection id as the first segment's id", async () => {
    const { seen, out } = await run(NSC, request("conn-1", undefined, undefined), "client");
    expect(seen.path?.pathSegments.map((s) => [s.name, s.id])).to.deep.equal([[NSC, "conn-1"]]);
    expect(seen.id).to.equal("conn-1");
    expect(out.id).to.equal("conn-1");
    expect(out.path?.index).to.equal(0);
  });

  it("same name, different id: takes the id from our own segment", async () => {
    const { seen, out } = await run(NSC, request("other-id", 0, [{ name: NSC, id: "seg-1" }]));
    expect(seen.id).to.equal("seg-1");
    expect(seen.path?.index).to.equal(0);
    expect(seen.path?.pathSegments).to.have.length(1);
    expect(out.id).to.equal("seg-1");
  });

  it("different name, invalid id: rejects a request whose id is not the previous hop's segment id", async () => {
    await expectInvalid(run(NSE, request("wrong-id", 0, [{ name: NSC, id: "seg-1" }])), 'must equal path.path_segments[0].id "seg-1"');
  });

  it("invalid index: rejects path.index beyond the segments", async () => {
    await expectInvalid(run(NSE, request("seg-1", 1, [{ name: NSC, id: "seg-1" }])), "path.index 1 must be less than");
  });

  it("different next name: replaces the stale next segment with a fresh one of ours", async () => {
    const { seen, out } = await run(
      NSE,
      request("seg-1", 0, [
        { name: NSC, id: "seg-1" },
        { name: "old-nse", id: "seg-2" },
      ]),
    );
    expect(seen.path?.index).to.equal(1);
    expect(seen.path?.pathSegments[1]?.name).to.equal(NSE);
    expect(seen.path?.pathSegments[1]?.id).to.match(UUID).and.not.equal("seg-2");
    expect(seen.id).to.equal(seen.path?.pathSegments[1]?.id);
    // On the way back the caller's index and id are restored.
    expect(out.path?.index).to.equal(0);
    expect(out.id).to.equal("seg-1");
  });

  it("no next available: appends our segment", async () => {
    const { seen, out } = await run(NSE, request("seg-1", 0, [{ name: NSC, id: "seg-1" }]));
    expect(seen.path?.pathSegments.map((s) => s.name)).to.deep.equal([NSC, NSE]);
    expect(seen.path?.index).to.equal(1);
    expect(seen.id).to.equal(seen.path?.pathSegments[1]?.id);
    expect(out.path?.index).to.equal(0);
    expect(out.id).to.equal("seg-1");
    expect(out.path?.pathSegments).to.have.length(2);
  });

  it("same next name: reuses the next segment and its id (refresh)", async () => {
    const { seen, out } = await run(
      NSE,
      request("seg-1", 0, [
        { name: NSC, id: "seg-1" },
        { name: NSE, id: "seg-2" },
      ]),
    );
    expect(seen.path?.index).to.equal(1);
    expect(seen.id).to.equal("seg-2");
    expect(seen.path?.pathSegments).to.have.length(2);
    expect(out.id).to.equal("seg-1");
    expect(out.path?.index).to.equal(0);
  });

  it("close walks the path like request", async () => {
    let seenId = "";
    const h = handler(
      chain(
        updatepath.newServer(NSE),
        newCheck({
          beforeClose: (_c, conn) => {
            seenId = conn.id;
          },
        }),
      ),
    );
    const conn = create(ConnectionSchema, {
      id: "seg-1",
      path: {
        index: 0,
        pathSegments: [
          { name: NSC, id: "seg-1" },
          { name: NSE, id: "seg-2" },
        ],
      },
    });
    await h.close(CallContext.create(), conn);
    expect(seenId).to.equal("seg-2");
  });
});
