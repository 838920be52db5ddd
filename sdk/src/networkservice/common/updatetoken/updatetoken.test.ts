import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { type Connection, ConnectionSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { Code, isStatusError } from "@nsm-ts/base/status";
import type { TokenGenerator } from "@nsm-ts/base/token";
import { newCheck } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { chain, handler } from "../../core/index.js";
import * as updatetoken from "./index.js";

const LIFETIME_MS = 15 * 60_000;

describe("updatetoken", () => {
  let clock: MockClock;
  let calls: Array<string | undefined>;
  let gen: TokenGenerator;

  beforeEach(() => {
    clock = new MockClock();
    calls = [];
    gen = async (peer) => {
      calls.push(peer?.spiffeId);
      return { token: `own-${calls.length}`, expires: new Date(clock.now() + LIFETIME_MS) };
    };
  });
  afterEach(() => expect(clock.pending()).to.equal(0));

  const request = (withPrevExpires: boolean) =>
    create(NetworkServiceRequestSchema, {
      connection: {
        id: "seg-2",
        path: {
          index: 1,
          pathSegments: [
            { name: "nsc", id: "seg-1", token: "client-own", ...(withPrevExpires ? { expires: timestampFromMs(clock.now() + 1000) } : {}) },
            { name: "nse", id: "seg-2" },
          ],
        },
      },
    });

  /** The tail returns the request's connection, so the result is what the element sent on. */
  const run = (h: ReturnType<typeof handler>, ctx: CallContext, req: ReturnType<typeof request>): Promise<Connection> =>
    h.request(ctx, req);

  it("server: signs our segment for the caller and takes the caller's per-RPC token into the previous segment", async () => {
    const incomingExpires = new Date(clock.now() + 10 * 60_000);
    const ctx = CallContext.create({
      clock,
      peer: { spiffeId: "spiffe://test/nsc", token: { token: "per-rpc", expires: incomingExpires } },
    });
    const conn = await run(handler(updatetoken.newServer(gen)), ctx, request(false));
    const [prev, own] = conn.path?.pathSegments ?? [];
    expect(prev?.token).to.equal("per-rpc");
    expect(timestampMs(prev?.expires ?? timestampFromMs(0))).to.equal(incomingExpires.getTime());
    expect(own?.token).to.equal("own-1");
    expect(timestampMs(own?.expires ?? timestampFromMs(0))).to.equal(clock.now() + LIFETIME_MS);
    expect(calls).to.deep.equal(["spiffe://test/nsc"]);
  });

  it("server: keeps a pre-filled previous expiry when the caller sent no token", async () => {
    const req = request(true);
    const conn = await run(handler(updatetoken.newServer(gen)), CallContext.create({ clock }), req);
    expect(conn.path?.pathSegments[0]?.token).to.equal("client-own");
    expect(timestampMs(conn.path?.pathSegments[0]?.expires ?? timestampFromMs(0))).to.equal(clock.now() + 1000);
    expect(conn.path?.pathSegments[1]?.token).to.equal("own-1");
  });

  it("server: no incoming token and no previous expiry is InvalidArgument naming the field", async () => {
    try {
      await handler(updatetoken.newServer(gen)).request(CallContext.create({ clock }), request(false));
      expect.fail("expected InvalidArgument");
    } catch (err) {
      expect(isStatusError(err, Code.InvalidArgument), String(err)).to.equal(true);
      expect((err as Error).message).to.equal(
        "updatetoken: path.path_segments[0].expires is missing and the caller sent no nsm-client-token",
      );
    }
    expect(calls).to.deep.equal([]);
  });

  it("server: the first segment (index 0, no previous hop) needs no incoming token", async () => {
    const req = create(NetworkServiceRequestSchema, {
      connection: { id: "a", path: { index: 0, pathSegments: [{ name: "nse", id: "a" }] } },
    });
    const conn = await run(handler(updatetoken.newServer(gen)), CallContext.create({ clock }), req);
    expect(conn.path?.pathSegments[0]?.token).to.equal("own-1");
  });

  it("server: rejects a path without our segment (updatepath missing)", async () => {
    const req = create(NetworkServiceRequestSchema, { connection: { id: "a" } });
    try {
      await handler(updatetoken.newServer(gen)).request(CallContext.create({ clock }), req);
      expect.fail("expected InvalidArgument");
    } catch (err) {
      expect(isStatusError(err, Code.InvalidArgument), String(err)).to.equal(true);
      expect((err as Error).message).to.contain("place updatepath before updatetoken");
    }
  });

  it("server: Close renews the token and goes on even when token generation fails", async () => {
    const closed: { conn?: Connection } = {};
    const h = handler(
      chain(
        updatetoken.newServer(gen),
        newCheck({
          beforeClose: (_c, c) => {
            closed.conn = c;
          },
        }),
      ),
    );
    const conn = create(ConnectionSchema, request(true).connection);
    await h.close(CallContext.create({ clock }), conn);
    expect(closed.conn?.path?.pathSegments[1]?.token).to.equal("own-1");
    const failing = handler(
      chain(
        updatetoken.newServer(async () => {
          throw new Error("no key");
        }),
        newCheck({
          beforeClose: (_c, c) => {
            closed.conn = c;
          },
        }),
      ),
    );
    closed.conn = undefined;
    await failing.close(CallContext.create({ clock }), conn);
    expect((closed as { conn?: Connection }).conn?.id).to.equal("seg-2");
  });

  it("client: signs our segment before the call, addressed to the configured peer", async () => {
    const req = create(NetworkServiceRequestSchema, {
      connection: { id: "a", path: { index: 0, pathSegments: [{ name: "nsc", id: "a" }] } },
    });
    const el = updatetoken.newClient(gen, { peer: () => ({ spiffeId: "spiffe://test/nsmgr" }) });
    const conn = await run(handler(el), CallContext.create({ clock }), req);
    expect(conn.path?.pathSegments[0]?.token).to.equal("own-1");
    expect(timestampMs(conn.path?.pathSegments[0]?.expires ?? timestampFromMs(0))).to.equal(clock.now() + LIFETIME_MS);
    expect(calls).to.deep.equal(["spiffe://test/nsmgr"]);
  });
});
