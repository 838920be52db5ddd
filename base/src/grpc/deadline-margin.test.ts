/**
 * A burst of calls reaching their deadline must not cost the caller its HTTP/2 session. A gRPC client that reaches
 * its deadline before the server's answer resets the stream, and Node's HTTP/2 server closes a session with
 * GOAWAY(INTERNAL_ERROR) after ~1,000 resets (+33 per second), failing every call on it: "Received RST_STREAM with
 * code 2 … Session closed with error code 2", as an overloaded nsmgr did to its clients' Requests. The server
 * therefore answers DeadlineExceeded a margin before the deadline; the client reads that status and sends no reset.
 * The client runs in a worker thread (its own event loop, as a separate process would).
 */
import { aborted, callsFromWorker, deferred, grpcHarness } from "@nsm-ts/testing/grpc";
import { expect } from "chai";
import { Code, isStatusError } from "../status/index.js";

/** 1,200 calls in 24 batches 50 ms apart, each with a 4 s deadline: their resets would come within ~1.2 s. */
const CALLS = { count: 1_200, batch: 50, gapMs: 50, timeoutMs: 4_000 };

describe("grpc server: answering before the deadline", function () {
  this.timeout(30_000);
  const { start, closeAll } = grpcHarness();
  afterEach(() => closeAll());

  /**
   * A server whose Request handler never answers; `allExpired` resolves once `CALLS.count` handlers saw their signal
   * abort as DeadlineExceeded.
   */
  async function stalling(): Promise<{ url: string; allExpired: Promise<void> }> {
    let expired = 0;
    const all = deferred();
    const { url } = await start({
      async request(_req, ctx) {
        if (isStatusError(await aborted(ctx.signal), Code.DeadlineExceeded) && ++expired === CALLS.count) all.resolve();
        return {};
      },
    });
    return { url, allExpired: all.promise };
  }

  it("1,200 expiring calls all end DeadlineExceeded from the server: no reset, the session lives", async () => {
    const { url, allExpired } = await stalling(); // the default margin: min(500 ms, a tenth of 4 s) = 400 ms
    const out = await callsFromWorker({ url, ...CALLS });
    // Every call ended DeadlineExceeded: none was lost with the session ("13: Received RST_STREAM with code 2 …").
    const answered = out["4: /networkservice.NetworkService/Request: deadline exceeded"] ?? 0;
    const timedOut = out["4: Deadline exceeded"] ?? 0; // the client's own timer won (a server lagging > 400 ms)
    expect(answered + timedOut, JSON.stringify(out)).to.equal(CALLS.count);
    // Most were answered by the server (all of them unless this machine is badly overloaded), so few were reset.
    expect(answered, JSON.stringify(out)).to.be.greaterThan(CALLS.count / 2);
    // The handlers ran to the deadline itself: every signal aborts (as DeadlineExceeded), the last ones after the answer.
    await allExpired;
  });
});
