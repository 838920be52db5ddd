/**
 * The prefix client with several prefix servers: the first one that answers serves; a server that goes away is
 * replaced by the next in order, asked for the same prefix; an exhausted pool at every server fails `ready`.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { PrefixRequest, PrefixResponseSchema } from "@nsm-ts/api/ipam";
import { type Channel, dial } from "@nsm-ts/base/grpc";
import { Code, isStatusError, StatusError } from "@nsm-ts/base/status";
import { grpcHarness } from "@nsm-ts/testing/grpc";
import { expect } from "chai";
import { createVl3Ipam } from "./ipam.js";
import { type PrefixClient, startPrefixClient } from "./prefix-client.js";

/** A prefix server that hands out the prefix asked for (or `fresh`), or refuses with an exhausted pool. */
function fakePool(fresh: string, exhausted = false) {
  const asked: string[] = [];
  return {
    asked,
    impl: {
      async *managePrefixes(reqs: AsyncIterable<PrefixRequest>): AsyncIterable<MessageInitShape<typeof PrefixResponseSchema>> {
        for await (const r of reqs) {
          asked.push(r.prefix);
          if (exhausted) throw new StatusError(Code.ResourceExhausted, `pool ${fresh}: no free prefix left`);
          yield { prefix: r.prefix || fresh, excludePrefixes: [] };
        }
      },
    },
  };
}

describe("vl3 prefix client: a list of prefix servers", () => {
  const { start, closeAll, channels } = grpcHarness();
  let pc: PrefixClient | undefined;
  afterEach(async () => {
    await pc?.close();
    pc = undefined;
    await closeAll();
  });
  const dialed = (url: string): Channel => {
    const ch = dial(url, { grpcOptions: { "grpc.initial_reconnect_backoff_ms": 50, "grpc.max_reconnect_backoff_ms": 100 } });
    channels.push(ch);
    return ch;
  };

  it("skips a server that does not answer and takes the prefix from the next one", async () => {
    const gone = await start({}, { ipam: fakePool("169.254.1.0/24").impl });
    const goneUrl = gone.url;
    await gone.server.close({ graceMs: 0 });
    const second = fakePool("169.254.2.0/24");
    const up = await start({}, { ipam: second.impl });
    pc = startPrefixClient([dialed(goneUrl), dialed(up.url)], createVl3Ipam(), { retryIntervalMs: 20 });
    expect(await pc.ready).to.equal("169.254.2.0/24");
    expect(pc.server).to.equal(1);
  });

  it("fails over in order when the server in use goes away, asking the next one for the same prefix", async () => {
    const first = fakePool("169.254.1.0/24");
    const a = await start({}, { ipam: first.impl });
    const second = fakePool("169.254.2.0/24");
    const b = await start({}, { ipam: second.impl });
    const v = createVl3Ipam();
    pc = startPrefixClient([dialed(a.url), dialed(b.url)], v, { retryIntervalMs: 20 });
    expect(await pc.ready).to.equal("169.254.1.0/24");
    expect(pc.server).to.equal(0);
    const reset = new Promise<void>((resolve) => {
      const stop = v.subscribe(() => {
        stop();
        resolve();
      });
    });
    await a.server.close({ graceMs: 0 });
    // The second server is asked for the prefix held: the endpoint keeps it (no IPAM reset).
    while (second.asked.length === 0) await new Promise((r) => setImmediate(r));
    expect(second.asked).to.deep.equal(["169.254.1.0/24"]);
    const outcome = await Promise.race([reset.then(() => "reset"), new Promise((r) => setTimeout(() => r("kept"), 200))]);
    expect(outcome).to.equal("kept");
    expect(pc.prefix).to.equal("169.254.1.0/24");
    expect(pc.server).to.equal(1);
  });

  it("rejects ready with ResourceExhausted only when every server's pool is exhausted at start", async () => {
    const a = await start({}, { ipam: fakePool("169.254.1.0/24", true).impl });
    const b = await start({}, { ipam: fakePool("169.254.2.0/24", true).impl });
    pc = startPrefixClient([dialed(a.url), dialed(b.url)], createVl3Ipam(), { retryIntervalMs: 20 });
    const err = await pc.ready.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStatusError(err, Code.ResourceExhausted), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/no free prefix left/);
  });
});
