/**
 * Stalled calls end: a request body that never completes is answered DeadlineExceeded after the receive timeout,
 * with or without a deadline of its own; a unary call without a deadline whose handler never answers is answered
 * DeadlineExceeded at the server's default deadline (and the handler's signal aborts); response streams without a
 * deadline live on.
 */
import { connect as http2Connect } from "node:http2";
import { aborted, deferred, expectStatus, grpcHarness } from "@nsm-ts/testing/grpc";
import { expect } from "chai";
import { Code, isStatusError } from "../status/index.js";

/** How long a test waits for an answer that must come before it calls the call held forever. */
const BOUND_MS = 5_000;

/**
 * Opens a raw HTTP/2 stream for `path` (no `grpc-timeout` unless given) and sends 4 of the 5 bytes of a gRPC frame
 * header, then nothing more. Resolves with the grpc-status the server ends it with, or "held" after `boundMs`.
 */
async function stall(url: string, path: string, timeout?: string, boundMs = BOUND_MS): Promise<string> {
  const session = http2Connect(url.replace("tcp://", "http://"));
  session.on("error", () => undefined);
  try {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...(timeout === undefined ? {} : { "grpc-timeout": timeout }),
    });
    stream.on("error", () => undefined);
    stream.write(Buffer.from([0, 0, 0, 0]));
    return await new Promise<string>((resolve) => {
      const bound = setTimeout(() => resolve("held"), boundMs);
      const done = (status: unknown): void => {
        clearTimeout(bound);
        resolve(String(status));
      };
      stream.on("response", (h) => {
        if (h["grpc-status"] !== undefined) done(h["grpc-status"]); // trailers-only answer
      });
      stream.on("trailers", (t) => done(t["grpc-status"]));
      stream.on("close", () => done("closed without a status"));
      stream.resume();
    });
  } finally {
    session.destroy();
  }
}

describe("grpc server: call limits for stalled callers", () => {
  const { start, closeAll } = grpcHarness();
  afterEach(() => closeAll());

  it("a unary request body that never completes is answered DeadlineExceeded after the receive timeout, deadline or not", async () => {
    const { url } = await start({}, { receiveTimeoutMs: 150 });
    const [none, long] = await Promise.all([
      stall(url, "/networkservice.NetworkService/Request"),
      stall(url, "/networkservice.NetworkService/Request", "100S"),
    ]);
    expect([none, long]).to.deep.equal([String(Code.DeadlineExceeded), String(Code.DeadlineExceeded)]);
  });

  it("a server-streaming request that never completes is answered DeadlineExceeded too", async () => {
    const { url } = await start({}, { receiveTimeoutMs: 150 });
    expect(await stall(url, "/grpc.health.v1.Health/Watch")).to.equal(String(Code.DeadlineExceeded));
  });

  it("receiveTimeoutMs 0 turns the limit off: the stalled call is held (as every one was before the limit)", async () => {
    const { url } = await start({}, { receiveTimeoutMs: 0 });
    expect(await stall(url, "/networkservice.NetworkService/Request", undefined, 1_000)).to.equal("held");
  });

  it("a unary call without a deadline whose handler never answers gets DeadlineExceeded at the default deadline; watches live on", async () => {
    const reason = deferred<unknown>();
    const { ns, health } = await start(
      {
        async request(_req, ctx) {
          reason.resolve(await aborted(ctx.signal));
          return {};
        },
      },
      { defaultDeadlineMs: 200 },
    );
    const watch = health.watch({ service: "" })[Symbol.asyncIterator]();
    expect((await watch.next()).value?.status).to.equal(1); // SERVING
    const ended = watch.next().then(
      () => "ended",
      () => "failed",
    );
    const began = Date.now();
    const err = await expectStatus(ns.request({}), Code.DeadlineExceeded);
    expect(err.message).to.match(/no answer within 200 ms, the server's deadline for calls that carry none/);
    expect(Date.now() - began).to.be.within(150, BOUND_MS);
    const r = await reason.promise;
    expect(isStatusError(r, Code.DeadlineExceeded), String(r)).to.equal(true);
    // The watch (a response stream, no deadline) is still open: nothing arrived on it.
    const still = await Promise.race([ended, Promise.resolve("open")]);
    expect(still).to.equal("open");
    await watch.return?.();
  });

  it("a call with its own deadline keeps it, however far the server's default is", async () => {
    const { ns } = await start(
      {
        async request(req) {
          return req.connection ?? {};
        },
      },
      { defaultDeadlineMs: 1 },
    );
    const out = await ns.request({ connection: { id: "a" } }, { timeoutMs: 5_000 });
    expect(out.id).to.equal("a");
  });
});
