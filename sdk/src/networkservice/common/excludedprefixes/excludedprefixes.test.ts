import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { type Connection, ConnectionSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import { chain, handler, type NetworkServiceElement } from "../../core/index.js";
import { createAddressPool, point2pointipam } from "../../ipam/index.js";
import { newClient, newServer, parseExcludedPrefixes } from "./index.js";

const outcome = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );
const excludedOf = (c: Connection) => c.context?.ipContext?.excludedPrefixes ?? [];

describe("excludedprefixes server", () => {
  let dir: string;
  let ac: AbortController;
  let waiters: Array<{ want: string[]; resolve: () => void }>;
  const onChange = (p: readonly string[]): void => {
    for (const w of waiters.splice(0)) {
      if (JSON.stringify(p) === JSON.stringify(w.want)) w.resolve();
      else waiters.push(w);
    }
  };
  /** Resolves when the server reports exactly `want` (a change event, not a timer). */
  const changedTo = (want: string[]) => new Promise<void>((resolve) => waiters.push({ want, resolve }));

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "nsm-excluded-"));
    ac = new AbortController();
    waiters = [];
  });
  afterEach(() => {
    ac.abort();
    rmSync(dir, { recursive: true, force: true });
  });

  it("adds the file's prefixes to the request without duplicates", async () => {
    const file = join(dir, "excluded_prefixes.yaml");
    writeFileSync(file, "prefixes:\n  - 198.51.100.0/24\n  - fd00::/64\n");
    const srv = newServer({ path: file, signal: ac.signal });
    const req = create(NetworkServiceRequestSchema, {
      connection: { id: "c1", context: { ipContext: { excludedPrefixes: ["198.51.100.0/24"] } } },
    });
    const conn = await handler(srv).request(CallContext.create(), req);
    expect(excludedOf(conn)).to.deep.equal(["198.51.100.0/24", "fd00::/64"]);
  });

  it("reloads the file when it changes and keeps the last good list on a bad file", async () => {
    const file = join(dir, "excluded_prefixes.yaml");
    const srv = newServer({ path: file, signal: ac.signal, onChange });
    expect(srv.prefixes()).to.deep.equal([]);

    let changed = changedTo(["203.0.113.0/24"]);
    writeFileSync(file, "prefixes:\n  - 203.0.113.0/24\n");
    await changed;
    const conn = await handler(srv).request(CallContext.create(), create(NetworkServiceRequestSchema, { connection: { id: "c1" } }));
    expect(excludedOf(conn)).to.deep.equal(["203.0.113.0/24"]);

    writeFileSync(file, "prefixes:\n  - not-a-prefix\n");
    changed = changedTo(["169.254.0.0/16", "203.0.113.0/24"]);
    writeFileSync(file, "prefixes: [169.254.0.0/16, 203.0.113.0/24]\n");
    await changed;
    expect(srv.prefixes()).to.deep.equal(["169.254.0.0/16", "203.0.113.0/24"]);
  });

  it("validates the file format", () => {
    expect(parseExcludedPrefixes("")).to.deep.equal([]);
    expect(parseExcludedPrefixes("prefixes: []")).to.deep.equal([]);
    expect(() => parseExcludedPrefixes("prefixes: [198.51.100.0/33]")).to.throw(/invalid prefix "198.51.100.0\/33"/);
    expect(() => parseExcludedPrefixes("- a")).to.throw(/mapping/);
  });
});

describe("excludedprefixes client", () => {
  /** Two endpoints allocating from the same range, chosen by connection id, like two NSEs of one service. */
  const twoEndpoints = (): NetworkServiceElement => {
    const a = handler(point2pointipam.newServer(createAddressPool(["169.254.0.0/24"])));
    const b = handler(point2pointipam.newServer(createAddressPool(["169.254.0.0/24"])));
    return {
      request: (ctx, req) => (req.connection?.id === "a" ? a : b).request(ctx, req),
      close: (ctx, conn) => (conn.id === "a" ? a : b).close(ctx, conn),
    };
  };
  const req = (id: string) => create(NetworkServiceRequestSchema, { connection: { id } });

  it("excludes the addresses of the client's other connections", async () => {
    const h = handler(chain(newClient(), twoEndpoints()));
    const a = await h.request(CallContext.create(), req("a"));
    expect(a.context?.ipContext?.srcIpAddrs).to.deep.equal(["169.254.0.1/32"]);
    const b = await h.request(CallContext.create(), req("b"));
    expect(excludedOf(b)).to.deep.equal(["169.254.0.1/32", "169.254.0.0/32"]);
    expect(b.context?.ipContext?.dstIpAddrs).to.deep.equal(["169.254.0.2/32"]);
    // Once "a" is closed its addresses are free for others again.
    await h.close(CallContext.create(), a);
    const b2 = await h.request(CallContext.create(), create(NetworkServiceRequestSchema, { connection: b }));
    expect(excludedOf(b2)).to.deep.equal(["169.254.0.1/32", "169.254.0.0/32"]); // the refresh carries what b was sent
  });

  it("closes and re-requests a new connection that comes back overlapping, then gives up", async () => {
    let calls = 0;
    let closes = 0;
    const ignoring = (alwaysSame: boolean): NetworkServiceElement => ({
      request: async (_ctx, r) => {
        const n = alwaysSame || calls++ < 2 ? 0 : 2;
        const conn = create(ConnectionSchema, r.connection);
        conn.context = create(ConnectionSchema, {
          context: { ipContext: { dstIpAddrs: [`169.254.0.${n}/32`], srcIpAddrs: [`169.254.0.${n + 1}/32`] } },
        }).context;
        return conn;
      },
      close: async () => {
        closes++;
      },
    });
    const h = handler(chain(newClient(), ignoring(false)));
    await h.request(CallContext.create(), req("a"));
    const b = await h.request(CallContext.create(), req("b"));
    expect(b.context?.ipContext?.dstIpAddrs).to.deep.equal(["169.254.0.2/32"]);
    expect(closes).to.equal(1);

    closes = 0;
    const stuck = handler(chain(newClient({ maxAttempts: 3 }), ignoring(true)));
    await stuck.request(CallContext.create(), req("a"));
    const err = await outcome(stuck.request(CallContext.create(), req("b")));
    expect(isStatusError(err, Code.FailedPrecondition), String(err)).to.equal(true);
    expect(closes).to.equal(3);
  });
});
