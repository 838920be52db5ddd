import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { type Connection, NetworkServiceRequestSchema, State } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { createServer } from "@nsm-ts/base/grpc";
import { Code, isStatusError, StatusError } from "@nsm-ts/base/status";
import type { FindResult, RegistryEntry, RegistryHandler } from "@nsm-ts/sdk/registry";
import { newCheck } from "@nsm-ts/testing/elements";
import { memNseRegistry, memNsRegistry, nsOf as ns, nseOf as nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { chain, handler, type NetworkServiceHandler, serveNetworkService } from "../../core/index.js";
import * as clienturl from "../clienturl/index.js";
import { urlKey } from "../clienturl/index.js";
import * as connect from "../connect/index.js";
import { isForwarderFailure, isRegistryFailure } from "../discover/index.js";
import * as updatepath from "../updatepath/index.js";
import { newServer } from "./index.js";

const fwd = (i: number, labels: Record<string, string>) =>
  nse({
    name: `fwd-${i}`,
    url: `unix:///tmp/fwd-${i}.sock`,
    networkServiceNames: ["forwarder"],
    networkServiceLabels: { forwarder: { labels } },
  });

/** `h`, except that every Find fails with Unavailable while `isDown()` (a registry outage). */
function outage<T extends RegistryEntry>(h: RegistryHandler<T>, isDown: () => boolean): RegistryHandler<T> {
  return {
    register: (c, e) => h.register(c, e),
    unregister: (c, e) => h.unregister(c, e),
    find(c, q) {
      if (!isDown()) return h.find(c, q);
      return (async function* (): AsyncIterable<FindResult<T>> {
        yield* [];
        throw new StatusError(Code.Unavailable, "No connection established: connect ECONNREFUSED");
      })();
    },
  };
}

describe("discoverforwarder", () => {
  let clock: MockClock;
  let nsReg: ReturnType<typeof memNsRegistry>;
  let nseReg: ReturnType<typeof memNseRegistry>;
  let calls: string[];
  let down: Set<string>;

  beforeEach(async () => {
    clock = new MockClock();
    nsReg = memNsRegistry();
    nseReg = memNseRegistry();
    calls = [];
    down = new Set();
    await nsReg.register(CallContext.create(), ns({ name: "ns-1" }));
    await nsReg.register(
      CallContext.create(),
      ns({ name: "ns-p2mp", matches: [{ sourceSelector: {}, routes: [], metadata: { labels: { p2mp: "true" } } }] }),
    );
    await nseReg.register(CallContext.create(), fwd(1, { p2p: "true" }));
    await nseReg.register(CallContext.create(), fwd(2, { p2p: "true" }));
    await nseReg.register(CallContext.create(), fwd(3, { p2mp: "true" }));
  });
  afterEach(() => {
    expect(clock.pending()).to.equal(0);
    expect(nseReg.watchers + nsReg.watchers).to.equal(0);
  });

  const server = () =>
    handler(
      chain(
        newServer({ ns: nsReg, nse: nseReg }),
        newCheck({
          beforeRequest: (ctx) => {
            const u = urlKey.get(ctx)?.pathname ?? "none";
            calls.push(u);
            if (down.has(u)) throw new StatusError(Code.Unavailable, `${u} is down`);
          },
          beforeClose: (ctx) => {
            calls.push(`close ${urlKey.get(ctx)?.pathname ?? "none"}`);
          },
        }),
      ),
    );
  const ctx = () => CallContext.create({ clock, deadline: clock.now() + 100 });
  const req = (conn: Partial<Pick<Connection, "networkService" | "state">> = {}) =>
    create(NetworkServiceRequestSchema, { connection: { id: "c1", networkService: "ns-1", ...conn } });

  it("skips a failing forwarder within one request and sticks to the chosen one across refreshes", async () => {
    const s = server();
    const c = ctx(); // one context = one connection's metadata
    down.add("/tmp/fwd-1.sock");
    await s.request(c, req());
    expect(calls).to.deep.equal(["/tmp/fwd-1.sock", "/tmp/fwd-2.sock"]);
    down.clear();
    await s.request(c, req());
    await s.request(c, req());
    expect(calls.slice(2)).to.deep.equal(["/tmp/fwd-2.sock", "/tmp/fwd-2.sock"]);
    await s.close(c, req().connection as Connection);
    expect(calls.slice(4)).to.deep.equal(["close /tmp/fwd-2.sock"]);
  });

  it("drops the choice on RESELECT_REQUESTED", async () => {
    const s = server();
    const c = ctx();
    down.add("/tmp/fwd-1.sock");
    await s.request(c, req());
    down.clear();
    await s.request(c, req({ state: State.RESELECT_REQUESTED }));
    expect(calls).to.deep.equal(["/tmp/fwd-1.sock", "/tmp/fwd-2.sock", "/tmp/fwd-1.sock"]);
  });

  it("chooses another forwarder once the chosen one is no longer registered", async () => {
    const s = server();
    const c = ctx();
    await s.request(c, req());
    await nseReg.unregister(CallContext.create(), fwd(1, {}));
    await s.request(c, req());
    expect(calls).to.deep.equal(["/tmp/fwd-1.sock", "/tmp/fwd-2.sock"]);
  });

  it("registry down: a refresh keeps the chosen forwarder and Close reaches it; a new Request fails naming the registry", async () => {
    let down = false;
    const s = handler(
      chain(
        newServer({ ns: outage(nsReg, () => down), nse: outage(nseReg, () => down) }),
        newCheck({
          beforeRequest: (c) => {
            calls.push(urlKey.get(c)?.pathname ?? "none");
          },
          beforeClose: (c) => {
            calls.push(`close ${urlKey.get(c)?.pathname ?? "none"}`);
          },
        }),
      ),
    );
    const c = ctx();
    await s.request(c, req());
    down = true;
    await s.request(c, req());
    await s.request(c, req());
    const err = await s.request(ctx(), req({})).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStatusError(err, Code.Unavailable), String(err)).to.equal(true);
    expect(isRegistryFailure(err), "marked as the registry's failure").to.equal(true);
    expect((err as Error).message).to.match(/^discoverforwarder: the registry cannot answer the look-up of network service "ns-1": /);
    await s.close(c, req().connection as Connection);
    expect(calls).to.deep.equal(["/tmp/fwd-1.sock", "/tmp/fwd-1.sock", "/tmp/fwd-1.sock", "close /tmp/fwd-1.sock"]);
  });

  it("selects forwarders by the Match metadata labels instead of p2p", async () => {
    await server().request(ctx(), req({ networkService: "ns-p2mp" }));
    expect(calls).to.deep.equal(["/tmp/fwd-3.sock"]);
  });

  it("reports every failed forwarder when all fail", async () => {
    down.add("/tmp/fwd-1.sock").add("/tmp/fwd-2.sock");
    const err = await server()
      .request(ctx(), req())
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isStatusError(err, Code.Unavailable), String(err)).to.equal(true);
    expect((err as Error).message).to.include("fwd-1: /tmp/fwd-1.sock is down; fwd-2: /tmp/fwd-2.sock is down");
  });

  it("waits for a forwarder to register, and fails with NotFound at the deadline", async () => {
    await nseReg.unregister(CallContext.create(), fwd(1, {}));
    await nseReg.unregister(CallContext.create(), fwd(2, {}));
    const s = server();
    const late = s.request(ctx(), req()).then(
      () => undefined,
      (e: unknown) => e,
    );
    await nseReg.untilWatchers(1);
    await nseReg.register(CallContext.create(), fwd(4, { p2p: "true" }));
    expect(await late).to.equal(undefined);
    expect(calls).to.deep.equal(["/tmp/fwd-4.sock"]);

    await nseReg.unregister(CallContext.create(), fwd(4, {}));
    const p = s.request(ctx(), req()).then(
      () => undefined,
      (e: unknown) => e,
    );
    await nseReg.untilWatchers(1);
    await clock.advance(100);
    const err = await p;
    expect(isStatusError(err, Code.NotFound), String(err)).to.equal(true);
    expect((err as Error).message).to.include(`no forwarder of network service "forwarder" with labels {"p2p":"true"}`);
  });

  it("the caller's deadline running out during an attempt: DeadlineExceeded, no other forwarder tried, none blamed", async () => {
    // The first forwarder takes the whole budget; then every call fails as a real dial past the deadline would.
    const slow = chain(newServer({ ns: nsReg, nse: nseReg }), {
      name: "next-hop",
      async request(c) {
        const u = urlKey.get(c)?.pathname ?? "none";
        calls.push(u);
        if ((c.remainingMs() ?? 1) <= 0) throw new StatusError(Code.DeadlineExceeded, `${u}: deadline exceeded`);
        await clock.advance(100);
        throw new StatusError(Code.DeadlineExceeded, `${u}: deadline exceeded`);
      },
      close: async () => {},
    });
    const err = await handler(slow)
      .request(ctx(), req())
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isStatusError(err, Code.DeadlineExceeded), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/^discoverforwarder: the caller's deadline passed/);
    expect(calls).to.deep.equal(["/tmp/fwd-1.sock"]);
    // Not counted against fwd-1: the next Request (with time left) tries it first again and keeps it.
    calls = [];
    await server().request(ctx(), req());
    expect(calls).to.deep.equal(["/tmp/fwd-1.sock"]);
  });

  it("a deadline already passed during discovery: DeadlineExceeded before any forwarder is dialled", async () => {
    const c = ctx();
    await clock.advance(100);
    const err = await server()
      .request(c, req())
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isStatusError(err, Code.DeadlineExceeded), String(err)).to.equal(true);
    expect(calls).to.deep.equal([]);
  });
});

describe("discoverforwarder: forwarders that cannot be reached", () => {
  let dir: string;
  let nseReg: ReturnType<typeof memNseRegistry>;
  const cleanup: Array<() => unknown> = [];
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "nsm-dfw-"));
    nseReg = memNseRegistry();
    // Nobody listens on these sockets: a forwarder that was killed and has not come back yet.
    for (const i of [1, 2]) {
      await nseReg.register(
        CallContext.create(),
        nse({
          name: `gone-${i}`,
          url: `unix://${join(dir, `gone-${i}.sock`)}`,
          networkServiceNames: ["forwarder"],
          networkServiceLabels: { forwarder: { labels: { p2p: "true" } } },
        }),
      );
    }
  });
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
    rmSync(dir, { recursive: true, force: true });
  });

  /** An nsmgr-like hop (discoverforwarder, then a real connect) served over gRPC, and a client connect to it. */
  async function nsmgrOverGrpc(): Promise<NetworkServiceHandler> {
    const conn = connect.newClient();
    const server = createServer();
    serveNetworkService(server, chain(updatepath.newServer("nsmgr"), newServer({ ns: memNsRegistry(), nse: nseReg }), conn));
    const url = await server.listen("tcp://127.0.0.1:0");
    const caller = connect.newClient();
    cleanup.push(
      () => server.close({ graceMs: 0 }),
      () => conn.dispose(),
      () => caller.dispose(),
    );
    return handler(chain(updatepath.newClient("nsc"), clienturl.newClient(url), caller));
  }
  const failure = (h: NetworkServiceHandler) =>
    h
      .request(
        CallContext.create({ deadline: Date.now() + 10_000 }),
        create(NetworkServiceRequestSchema, { connection: { id: "c1", networkService: "ns-1" } }),
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );

  it("none answered: Unavailable marked as a forwarder failure, also after it crossed a gRPC hop", async () => {
    const err = await failure(await nsmgrOverGrpc());
    expect(isStatusError(err, Code.Unavailable), String(err)).to.equal(true);
    expect(isForwarderFailure(err), String(err)).to.equal(true);
    expect((err as Error).message).to.include("all 2 forwarders failed");
  });

  it("a forwarder that answered with an error (here: its endpoint is gone) is no forwarder failure", async () => {
    const fwd = createServer();
    serveNetworkService(fwd, {
      name: "forwarder-stand-in",
      request: () => Promise.reject(new StatusError(Code.Unavailable, "forwarder: the endpoint cannot be reached")),
      close: async () => undefined,
    });
    cleanup.push(() => fwd.close({ graceMs: 0 }));
    const url = `unix://${join(dir, "alive.sock")}`;
    await fwd.listen(url);
    await nseReg.register(
      CallContext.create(),
      nse({ name: "alive", url, networkServiceNames: ["forwarder"], networkServiceLabels: { forwarder: { labels: { p2p: "true" } } } }),
    );
    const err = await failure(await nsmgrOverGrpc());
    expect(isStatusError(err, Code.Unavailable), String(err)).to.equal(true);
    expect((err as Error).message).to.include("the endpoint cannot be reached");
    expect(isForwarderFailure(err), String(err)).to.equal(false);
  });
});
