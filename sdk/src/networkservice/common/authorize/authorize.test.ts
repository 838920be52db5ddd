import { create } from "@bufbuild/protobuf";
import { ConnectionSchema, NetworkServiceRequestSchema, type Path } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import type { PathPolicyInput, Policy } from "@nsm-ts/base/policy";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { newCounter } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { chain, handler, type NetworkServiceElement } from "../../core/index.js";
import * as begin from "../begin/index.js";
import * as metadata from "../metadata/index.js";
import * as authorize from "./index.js";

/** A policy that records its inputs and denies when told to. */
function recording(deny: (input: PathPolicyInput) => string | undefined = () => undefined) {
  const inputs: PathPolicyInput[] = [];
  const policy: Policy<PathPolicyInput> = {
    name: "recording",
    async check(input) {
      inputs.push(input);
      return deny(input);
    },
  };
  return { policy, inputs };
}

const request = () =>
  create(NetworkServiceRequestSchema, {
    connection: {
      id: "b",
      path: {
        index: 1,
        pathSegments: [
          { name: "nsc", id: "a" },
          { name: "nse", id: "b" },
          { name: "stale", id: "c" },
        ],
      },
    },
  });

async function expectDenied(p: Promise<unknown>, text: string): Promise<void> {
  try {
    await p;
  } catch (err) {
    expect(isStatusError(err, Code.PermissionDenied), String(err)).to.equal(true);
    expect((err as Error).message).to.contain(text);
    return;
  }
  expect.fail("expected PermissionDenied");
}

describe("authorize", () => {
  const clock = new MockClock();
  const peerCtx = () => CallContext.create({ clock, peer: { spiffeId: "spiffe://test/nsc" } });

  it("server: checks the left side of the path with the caller, the clock and the insecure flag", async () => {
    const rec = recording();
    const h = handler(authorize.newServer({ policies: [rec.policy], insecure: true }));
    await h.request(peerCtx(), request());
    const input = rec.inputs[0] as PathPolicyInput;
    expect(input.path.index).to.equal(1);
    expect(input.path.pathSegments.map((s) => s.name)).to.deep.equal(["nsc", "nse"]);
    expect(input.peer?.spiffeId).to.equal("spiffe://test/nsc");
    expect(input.now).to.equal(clock.now());
    expect(input.insecure).to.equal(true);
  });

  it("server: a denial is PermissionDenied naming the policy, and nothing after authorize runs", async () => {
    const counter = newCounter();
    const rec = recording(() => "nope");
    const h = handler(chain(authorize.newServer({ policies: [rec.policy] }), counter));
    await expectDenied(h.request(peerCtx(), request()), "authorize: policy recording denied: nope");
    expect(counter.requests).to.equal(0);
    await expectDenied(h.close(peerCtx(), create(ConnectionSchema, request().connection)), "policy recording denied");
    expect(counter.closes).to.equal(0);
  });

  it("server: in-process calls (no peer) are not checked", async () => {
    const rec = recording(() => "nope");
    const h = handler(authorize.newServer({ policies: [rec.policy] }));
    await h.request(CallContext.create({ clock }), request());
    expect(rec.inputs).to.have.length(0);
  });

  it("server: the default policies deny a path whose tokens are not JWTs", async () => {
    const h = handler(authorize.newServer({ insecure: true }));
    await expectDenied(h.request(peerCtx(), request()), "policy tokens_valid denied");
  });

  it("client: checks the returned path with the server peer reported by the call, closes and fails on denial", async () => {
    const rec = recording((input) => (input.path.pathSegments.length > 2 ? "too long" : undefined));
    const counter = newCounter();
    const server: NetworkServiceElement = {
      name: "fake-connect",
      async request(ctx, r, n) {
        const slot = authorize.serverPeerKey.get(ctx);
        if (slot) slot.peer = { spiffeId: "spiffe://test/nse" };
        return n.request(ctx, r);
      },
      close: (ctx, c, n) => n.close(ctx, c),
    };
    const h = handler(chain(authorize.newClient({ policies: [rec.policy] }), counter, server));
    const ok = create(NetworkServiceRequestSchema, {
      connection: { id: "a", path: { index: 0, pathSegments: [{ name: "nsc" }, { name: "nse" }] } },
    });
    await h.request(CallContext.create({ clock }), ok);
    expect(rec.inputs[0]?.peer?.spiffeId).to.equal("spiffe://test/nse");
    expect((rec.inputs[0]?.path as Path | undefined)?.pathSegments).to.have.length(2);
    expect(counter.closes).to.equal(0);
    await expectDenied(h.request(CallContext.create({ clock }), request()), "authorize-client: policy recording denied: too long");
    expect(counter.closes).to.equal(1);
  });
});

describe("authorize with begin", () => {
  it("a denied Close leaves the connection established for its owner", async () => {
    const clock = new MockClock();
    const counter = newCounter();
    const onlyOwner: Policy<PathPolicyInput> = {
      name: "only_owner",
      check: async (input) => (input.peer?.spiffeId === "spiffe://test/owner" ? undefined : "not the owner"),
    };
    const h = handler(chain(begin.newServer(), metadata.newServer(), authorize.newServer({ policies: [onlyOwner] }), counter));
    const owner = CallContext.create({ clock, peer: { spiffeId: "spiffe://test/owner" } });
    const intruder = CallContext.create({ clock, peer: { spiffeId: "spiffe://test/intruder" } });
    const conn = await h.request(owner, create(NetworkServiceRequestSchema, { connection: { id: "c1" } }));
    await expectDenied(h.close(intruder, conn), "policy only_owner denied");
    expect(counter.closes).to.equal(0);
    await h.close(owner, conn);
    expect(counter.closes).to.equal(1);
  });
});

describe("authorize server in the insecure dev mode", () => {
  const enc = (o: object): string => Buffer.from(JSON.stringify(o)).toString("base64url");
  const jwt = (claims: object): string => `${enc({ alg: "ES256", typ: "JWT" })}.${enc(claims)}.sig`;
  const clock = new MockClock(Date.UTC(2026, 0, 1));
  const now = Math.floor(clock.now() / 1000);
  const req = (callerClaims: object) =>
    create(NetworkServiceRequestSchema, {
      connection: {
        id: "b",
        path: {
          index: 1,
          pathSegments: [
            { name: "nsc", id: "a", token: jwt(callerClaims) },
            { name: "nse", id: "b", token: jwt({ sub: "spiffe://dev/nse", exp: now + 600 }) },
          ],
        },
      },
    });
  const run = async (claims: object): Promise<unknown> => {
    const h = handler(chain(authorize.newServer({ insecure: true }), newCounter("c")));
    const ctx = CallContext.create({ clock, peer: { address: "127.0.0.1:1234" } });
    return h.request(ctx, req(claims)).then(
      () => undefined,
      (e: unknown) => e,
    );
  };

  it("still refuses a caller token without exp, expired or not yet valid, and accepts a live one", async () => {
    for (const claims of [{ sub: "spiffe://dev/nsc" }, { sub: "spiffe://dev/nsc", exp: now - 1 }, { exp: now + 60, nbf: now + 30 }]) {
      const err = await run(claims);
      expect(isStatusError(err, Code.PermissionDenied), JSON.stringify(claims)).to.equal(true);
      expect((err as Error).message).to.contain("policy tokens_expired denied: token of path segment 0 (nsc)");
    }
    expect(await run({ sub: "spiffe://dev/nsc", exp: now + 60 })).to.equal(undefined);
  });
});
