/**
 * validate (networkservice server): Requests and Closes beyond the limits of `@nsm-ts/base/limits` or with an
 * invalid path-segment `expires` are refused with `InvalidArgument` naming the field, on the endpoint chain and at
 * the head of the nsmgr and forwarder chains, before any element keeps them; connections at the limits pass.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { type Connection, ConnectionSchema, NetworkServiceRequestSchema, PathSchema } from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { MAX_LABELS, MAX_PATH_SEGMENTS } from "@nsm-ts/base/limits";
import { Code, StatusError } from "@nsm-ts/base/status";
import { createTestTokenGenerator } from "@nsm-ts/testing/token";
import { expect } from "chai";
import { endpoint } from "../../chains/endpoint.js";
import { hopParts } from "../../chains/hop/parts.js";
import { chain, handler, type NetworkServiceElement } from "../../core/index.js";
import * as validate from "./index.js";

const MB = 1024 * 1024;

function labels(n: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < n; i++) out[`k${i}`] = "v";
  return out;
}

function conn(init: MessageInitShape<typeof ConnectionSchema> = {}): Connection {
  const c = create(ConnectionSchema, init);
  c.id ||= "c1";
  c.networkService ||= "svc";
  c.path ??= create(PathSchema, { index: 0, pathSegments: [{ name: "nsc", id: "c1" }] });
  return c;
}

/** Counts the calls that got past validate. */
function reached(): NetworkServiceElement & { n: number } {
  const el = {
    name: "reached",
    n: 0,
    async request(_ctx: CallContext, req: Parameters<NetworkServiceElement["request"]>[1]) {
      el.n++;
      return req.connection ?? create(ConnectionSchema);
    },
    async close() {
      el.n++;
    },
  };
  return el;
}

async function refused(p: Promise<unknown>, field: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "must be refused").to.be.instanceOf(StatusError);
  expect((err as StatusError).code, (err as StatusError).message).to.equal(Code.InvalidArgument);
  expect((err as StatusError).message).to.match(field);
}

describe("validate (networkservice limits)", () => {
  const ctx = CallContext.create();

  const cases: [string, () => Connection, RegExp][] = [
    ["a 1 MB connection id", () => conn({ id: "x".repeat(MB) }), /^validate: connection\.id is longer than 1024 bytes/],
    [
      "a 1 MB label value",
      () => conn({ labels: { app: "x".repeat(MB) } }),
      /^validate: connection\.labels\["app"\] is longer than 4096 bytes/,
    ],
    ["100 000 labels", () => conn({ labels: labels(100_000) }), /^validate: connection\.labels has more than 256 labels/],
    [
      "100 000 path segments",
      () => conn({ path: { index: 0, pathSegments: Array.from({ length: 100_000 }, (_, i) => ({ name: `s${i}`, id: `${i}` })) } }),
      /^validate: connection\.path\.path_segments has 100000 items, more than 64/,
    ],
    ["a 1 MB payload", () => conn({ payload: "x".repeat(MB) }), /^validate: connection\.payload is longer than 16384 bytes/],
    [
      "an expires with nanos ≥ 1e9",
      () => conn({ path: { index: 0, pathSegments: [{ name: "nsc", id: "c1", expires: { seconds: 1n, nanos: 1_000_000_000 } }] } }),
      /^validate: connection\.path\.path_segments\[0\]\.expires\.nanos /,
    ],
    [
      "an expires of -1e15 s",
      () => conn({ path: { index: 0, pathSegments: [{ name: "nsc", id: "c1", expires: { seconds: -(10n ** 15n), nanos: 0 } }] } }),
      /^validate: connection\.path\.path_segments\[0\]\.expires\.seconds /,
    ],
    [
      "a 1 MB extra context",
      () => conn({ context: { extraContext: { a: "x".repeat(70 * 1024) } } }),
      /^validate: connection\.context\.extra_context\["a"\] is longer|^validate: connection\.context is \d+ bytes/,
    ],
  ];

  for (const [what, make, field] of cases) {
    it(`${what}: InvalidArgument naming the field on Request and Close, nothing reaches the next element`, async () => {
      const r = reached();
      const h = handler(chain(validate.newServer(), r));
      await refused(h.request(ctx, create(NetworkServiceRequestSchema, { connection: make() })), field);
      await refused(h.close(ctx, make()), field);
      expect(r.n).to.equal(0);
    });
  }

  it("too many mechanism preferences or an oversized mechanism parameter are refused", async () => {
    const h = handler(chain(validate.newServer(), reached()));
    const many = Array.from({ length: 1000 }, () => ({ cls: "LOCAL", type: "KERNEL" }));
    await refused(
      h.request(ctx, create(NetworkServiceRequestSchema, { connection: conn(), mechanismPreferences: many })),
      /mechanism_preferences has 1000 items/,
    );
    const big = [{ cls: "LOCAL", type: "KERNEL", parameters: { name: "x".repeat(MB) } }];
    await refused(
      h.request(ctx, create(NetworkServiceRequestSchema, { connection: conn(), mechanismPreferences: big })),
      /mechanism_preferences\[0\]\.parameters\["name"\]/,
    );
  });

  it("a connection at the limits passes", async () => {
    const r = reached();
    const h = handler(chain(validate.newServer(), r));
    const pathSegments = Array.from({ length: MAX_PATH_SEGMENTS }, (_, i) => ({
      name: `s${i}`,
      id: `${i}`,
      expires: { seconds: 1_900_000_000n, nanos: 999_999_999 },
    }));
    await h.request(
      ctx,
      create(NetworkServiceRequestSchema, { connection: conn({ labels: labels(MAX_LABELS), path: { index: 0, pathSegments } }) }),
    );
    expect(r.n).to.equal(1);
  });

  it("the endpoint chain refuses a 1 MB connection id with InvalidArgument", async () => {
    const ep = endpoint({ name: "nse", tokenGenerator: createTestTokenGenerator(), timeout: false });
    await refused(
      handler(ep.element).request(ctx, create(NetworkServiceRequestSchema, { connection: conn({ id: "x".repeat(MB) }) })),
      /^validate: connection\.id/,
    );
  });

  it("the nsmgr and forwarder head starts with validate", () => {
    const parts = hopParts({ name: "nsmgr", tokenGenerator: createTestTokenGenerator() });
    try {
      expect(parts.head[0]?.name).to.equal("validate");
    } finally {
      parts.dispose();
    }
  });
});
