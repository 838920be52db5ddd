/**
 * The HTTP/2 stall between two Node peers, the bound on unary calls per channel that prevents it and the keepalive
 * that ends it. A burst of calls whose headers (one way) and answers (the other) together exceed a unix socket's
 * buffers leaves both sessions waiting for their own write before they read again; with the bound the client's
 * writes fit, and with keepalive the unanswered ping drops a stalled connection and the channel reconnects.
 */
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { connect as connectHttp2 } from "node:http2";
import { connect as connectNet } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { ConnectionSchema, NetworkService } from "@nsm-ts/api/networkservice";
import { expect } from "chai";
import { createLogger } from "../log/index.js";
import { codeName, isStatusError } from "../status/index.js";
import {
  type Channel,
  createClient,
  createServer,
  DEFAULT_KEEPALIVE,
  type DialOptions,
  dial,
  type Keepalive,
  type NsmServer,
} from "./index.js";

/** "ok" for an answer, else the failure's status code name. */
const outcome = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => "ok",
    (e: unknown) => (isStatusError(e) ? codeName(e.code) : String(e)),
  );

/** Sockets this process holds open (Linux): a stalled connection that was not ended keeps two. */
const openSockets = (): number =>
  readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith("socket:");
    } catch {
      return false; // closed while listing (the directory's own fd)
    }
  }).length;

/** Calls in the burst and the size of the header each carries both ways: far more than a unix socket buffers. */
const BURST = 2000;
const HEADER_BYTES = 4000;

describe("grpc typed layer", () => {
  describe("keepalive", () => {
    let dir: string;
    const cleanups: Array<() => Promise<void> | void> = [];
    const channels: Channel[] = [];
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), "nsm-keepalive-"));
    });
    afterEach(async () => {
      for (const c of channels.splice(0)) c.close();
      for (const f of cleanups.splice(0)) await f();
      rmSync(dir, { recursive: true, force: true });
    });

    /** Our own server, answering every Request with a large header, with `keepalive` for its connections. */
    async function ourServer(
      keepalive: Keepalive | false,
      log = createLogger({ level: "silent" }),
    ): Promise<{ url: string; server: NsmServer }> {
      const server = createServer({ keepalive, log });
      server.addService(NetworkService, {
        request: async (req, ctx) => {
          ctx.setHeader("x-answer", "a".repeat(HEADER_BYTES));
          return req.connection ?? create(ConnectionSchema);
        },
        close: async () => ({}),
      });
      const url = await server.listen(`unix://${join(dir, "ours.sock")}`);
      cleanups.push(() => server.close({ graceMs: 100 }));
      return { url, server };
    }

    /**
     * A client on `dial(url, opts)` of the server at `url`, by default `ourServer(false)` (no server keepalive: a
     * stall lasts until the client ends it, or until the server closes).
     */
    async function setUp(opts: DialOptions, url?: string) {
      url ??= (await ourServer(false)).url;
      const ch = dial(url, opts);
      channels.push(ch);
      const ns = createClient(NetworkService, ch);
      const call = (i: number, timeoutMs: number) =>
        ns.request(
          { connection: { id: `c-${i}`, labels: { l: "v".repeat(100) } } },
          { timeoutMs, metadata: { "x-ask": `${i}`.padEnd(HEADER_BYTES, "q") } },
        );
      /** Starts the whole burst in one turn and counts the outcomes by status code ("ok" for an answer). */
      const burst = async (timeoutMs: number): Promise<Map<string, number>> => {
        const out = await Promise.all(Array.from({ length: BURST }, (_, i) => outcome(call(i, timeoutMs))));
        const codes = new Map<string, number>();
        for (const k of out) codes.set(k, (codes.get(k) ?? 0) + 1);
        return codes;
      };
      return { call, burst };
    }

    it("is on by default: a ping a minute while calls run, dropped after 20 s without an answer", () => {
      expect(DEFAULT_KEEPALIVE).to.deep.equal({ timeMs: 60_000, timeoutMs: 20_000 });
    });

    it("without it and without a bound on calls, a burst both ways stalls the connection for good: every call, later ones too, runs into its deadline", async function () {
      this.timeout(30_000);
      const { call, burst } = await setUp({ keepalive: false, maxUnaryCalls: 0 });
      const codes = await burst(3_000);
      // Node 20's HTTP/2: both sessions stop reading while their own write is pending. Should a later Node no
      // longer stall here, this test fails and the keepalive default can be reconsidered.
      expect(codes.get("DeadlineExceeded") ?? 0, JSON.stringify([...codes])).to.be.greaterThan(0);
      expect(await outcome(call(-1, 2_000))).to.equal("DeadlineExceeded");
    });

    it("with the default bound on unary calls, the same burst goes through: the client's writes always fit the socket", async function () {
      this.timeout(60_000);
      const { burst } = await setUp({ keepalive: false });
      const codes = await burst(30_000);
      expect([...codes]).to.deep.equal([["ok", BURST]]);
    });

    it("with keepalive, a stalled connection is dropped (the burst fails Unavailable, not at its deadline) and the next call is answered", async function () {
      this.timeout(30_000);
      const { call, burst } = await setUp({ keepalive: { timeMs: 300, timeoutMs: 300 }, maxUnaryCalls: 0 });
      const t0 = performance.now();
      const codes = await burst(10_000);
      const tookMs = performance.now() - t0;
      // Either the burst got through (no stall this time) or the stall ended long before the calls' deadline.
      expect(codes.get("DeadlineExceeded") ?? 0, JSON.stringify([...codes])).to.equal(0);
      for (const k of codes.keys()) expect(["ok", "Unavailable"], JSON.stringify([...codes])).to.include(k);
      expect(tookMs).to.be.below(9_000);
      const answer = await call(-1, 5_000);
      expect(answer.id).to.equal("c--1");
    });

    it("the server's keepalive alone ends a stall: the burst fails Unavailable, not at its deadline, and no socket of the stalled connection is left", async function () {
      this.timeout(30_000);
      const before = openSockets();
      const { url } = await ourServer({ timeMs: 300, timeoutMs: 300 });
      const { call, burst } = await setUp({ keepalive: false, maxUnaryCalls: 0 }, url);
      const t0 = performance.now();
      const codes = await burst(10_000);
      // It stalled (as without keepalive every time) and was ended long before the calls' deadline.
      expect(codes.get("Unavailable") ?? 0, JSON.stringify([...codes])).to.be.greaterThan(0);
      for (const k of codes.keys()) expect(["ok", "Unavailable"], JSON.stringify([...codes])).to.include(k);
      expect(performance.now() - t0).to.be.below(9_000);
      expect((await call(-1, 5_000)).id).to.equal("c--1");
      // The listener, and the client's and the server's end of the one connection now up.
      expect(openSockets() - before).to.equal(3);
    });

    it("closing a server ends its stalled connections too (the session itself cannot be closed while its write is stuck)", async function () {
      this.timeout(30_000);
      const before = openSockets();
      const { url, server } = await ourServer(false);
      const { call, burst } = await setUp({ keepalive: false, maxUnaryCalls: 0 }, url);
      const codes = burst(60_000);
      expect(await outcome(call(-1, 2_000)), "a call after the burst").to.equal("DeadlineExceeded");
      await server.close({ graceMs: 100 });
      // The burst's calls end with the connection, long before their deadline.
      const ended = await codes;
      expect(ended.get("Unavailable") ?? 0, JSON.stringify([...ended])).to.be.greaterThan(0);
      for (const k of ended.keys()) expect(["ok", "Unavailable"], JSON.stringify([...ended])).to.include(k);
      expect(openSockets()).to.equal(before);
    });

    it("the server pings idle connections too, and a connection that answers stays", async function () {
      this.timeout(10_000);
      const lines: string[] = [];
      const destination = new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(chunk.toString());
          done();
        },
      });
      const { url } = await ourServer({ timeMs: 50, timeoutMs: 50 }, createLogger({ destination, level: "warn" }));
      // A bare HTTP/2 client: it answers pings (Node does so itself) and lets the test count them.
      const session = connectHttp2("http://localhost", { createConnection: () => connectNet(url.slice("unix://".length)) });
      cleanups.push(() => {
        session.destroy();
      });
      await new Promise<void>((resolve) => {
        let pings = 0;
        session.on("ping", () => {
          if (++pings === 5) resolve();
        });
      });
      expect(session.closed || session.destroyed, "the connection is still up").to.equal(false);
      expect(lines, "no connection ended").to.deep.equal([]);
    });
  });
});
