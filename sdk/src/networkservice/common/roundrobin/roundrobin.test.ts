import { create } from "@bufbuild/protobuf";
import { ConnectionSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { Code, isStatusError, StatusError } from "@nsm-ts/base/status";
import { newCheck } from "@nsm-ts/testing/elements";
import { memNseRegistry, memNsRegistry, nsOf as ns, nseOf as nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { chain, handler } from "../../core/index.js";
import { urlKey } from "../clienturl/index.js";
import * as discover from "../discover/index.js";
import { newServer } from "./index.js";

const NS = "ns-1";

describe("roundrobin", () => {
  let nsReg: ReturnType<typeof memNsRegistry>;
  let nseReg: ReturnType<typeof memNseRegistry>;
  const clock = new MockClock();

  beforeEach(async () => {
    nsReg = memNsRegistry();
    nseReg = memNseRegistry();
    await nsReg.register(CallContext.create(), ns({ name: NS }));
    for (let i = 1; i <= 4; i++) {
      await nseReg.register(CallContext.create(), nse({ name: `nse-${i}`, url: `tcp://127.0.0.1:500${i}`, networkServiceNames: [NS] }));
    }
  });
  afterEach(() => {
    expect(clock.pending()).to.equal(0);
    expect(nseReg.watchers + nsReg.watchers).to.equal(0);
  });

  const build = (failUrls: Set<string>, urls: string[], code: (url: string) => Code = () => Code.Unavailable) =>
    handler(
      chain(
        discover.newServer({ ns: nsReg, nse: nseReg }),
        newServer(),
        newCheck({
          beforeRequest: (ctx) => {
            const u = urlKey.get(ctx)?.href ?? "none";
            urls.push(u);
            if (failUrls.has(u)) throw new StatusError(code(u), `endpoint at ${u} is down`);
          },
          beforeClose: (ctx) => {
            urls.push(`close ${urlKey.get(ctx)?.href ?? "none"}`);
          },
        }),
      ),
    );
  const req = (id: string) => create(NetworkServiceRequestSchema, { connection: { id, networkService: NS } });
  const ctx = () => CallContext.create({ clock, deadline: clock.now() + 100 });

  it("rotates through the candidates in order, per network service", async () => {
    const urls: string[] = [];
    const h = build(new Set(), urls);
    const chosen: string[] = [];
    for (let i = 0; i < 6; i++) chosen.push((await h.request(ctx(), req(`c${i}`))).networkServiceEndpointName);
    expect(chosen).to.deep.equal(["nse-1", "nse-2", "nse-3", "nse-4", "nse-1", "nse-2"]);
    expect(urls[0]).to.equal("tcp://127.0.0.1:5001");
  });

  it("skips failing candidates within one request: three fail, the fourth serves", async () => {
    const urls: string[] = [];
    const h = build(new Set(["tcp://127.0.0.1:5001", "tcp://127.0.0.1:5002", "tcp://127.0.0.1:5003"]), urls);
    const conn = await h.request(ctx(), req("c1"));
    expect(conn.networkServiceEndpointName).to.equal("nse-4");
    expect(urls).to.deep.equal(["tcp://127.0.0.1:5001", "tcp://127.0.0.1:5002", "tcp://127.0.0.1:5003", "tcp://127.0.0.1:5004"]);
  });

  it("reports every candidate's failure as Unavailable when all fail", async () => {
    const all = new Set([1, 2, 3, 4].map((i) => `tcp://127.0.0.1:500${i}`));
    const h = build(all, []);
    const err = await h.request(ctx(), req("c1")).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStatusError(err, Code.Unavailable), String(err)).to.equal(true);
    for (let i = 1; i <= 4; i++) expect((err as Error).message).to.include(`nse-${i}: endpoint at tcp://127.0.0.1:500${i} is down`);
  });

  it("every candidate refusing alike (PermissionDenied) answers that code, a mix of refusals answers Unavailable", async () => {
    const all = new Set([1, 2, 3, 4].map((i) => `tcp://127.0.0.1:500${i}`));
    const denied = await build(all, [], () => Code.PermissionDenied)
      .request(ctx(), req("c1"))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isStatusError(denied, Code.PermissionDenied), String(denied)).to.equal(true);
    expect((denied as Error).message).to.include("all 4 of 4 candidates");
    const mixed = await build(all, [], (u) => (u.endsWith("5001") ? Code.InvalidArgument : Code.PermissionDenied))
      .request(ctx(), req("c2"))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isStatusError(mixed, Code.Unavailable), String(mixed)).to.equal(true);
  });

  it("closes through the connection's endpoint URL", async () => {
    const urls: string[] = [];
    const h = build(new Set(), urls);
    await h.close(CallContext.create(), create(ConnectionSchema, { id: "c1", networkServiceEndpointName: "nse-3" }));
    expect(urls).to.deep.equal(["close tcp://127.0.0.1:5003"]);
  });

  it("the caller's deadline running out during an attempt: DeadlineExceeded, no other endpoint tried", async () => {
    const urls: string[] = [];
    const h = handler(
      chain(discover.newServer({ ns: nsReg, nse: nseReg }), newServer(), {
        name: "next-hop",
        async request(c) {
          urls.push(urlKey.get(c)?.href ?? "none");
          if ((c.remainingMs() ?? 1) > 0) await clock.advance(c.remainingMs() ?? 0);
          throw new StatusError(Code.DeadlineExceeded, "deadline exceeded");
        },
        close: async () => {},
      }),
    );
    const err = await h
      .request(
        CallContext.create({ clock, deadline: clock.now() + 100 }),
        create(NetworkServiceRequestSchema, { connection: { id: "c1", networkService: NS } }),
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isStatusError(err, Code.DeadlineExceeded), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/^roundrobin: the caller's deadline passed/);
    expect(urls).to.have.length(1);
  });
});
