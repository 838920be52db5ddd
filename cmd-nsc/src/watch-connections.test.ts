/** `watch connections` opens its stream again after a session loss instead of ending. */
import { create } from "@bufbuild/protobuf";
import { type ConnectionEvent, ConnectionEventSchema, ConnectionEventType } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { silentLogger } from "@nsm-ts/base/log";
import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import { watchConnectionEvents } from "./watch-connections.js";

const ev = (type: ConnectionEventType): ConnectionEvent => create(ConnectionEventSchema, { type, connections: {} });

/** Resolves once `cond` holds, checking on every turn of the event loop. */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}

describe("cmd-nsc watch connections", () => {
  it("reopens after a GOAWAY, an end or a fall-behind, with a backoff that restarts once a stream works", async () => {
    const clock = new MockClock();
    const ac = new AbortController();
    const seen: ConnectionEventType[] = [];
    // What each opened stream does: events, then how it ends.
    const plans: Array<[ConnectionEventType[], StatusError | "end" | "hang"]> = [
      [[ConnectionEventType.INITIAL_STATE_TRANSFER, ConnectionEventType.UPDATE], new StatusError(Code.Unavailable, "GOAWAY")],
      [[], new StatusError(Code.Unavailable, "connection refused")],
      [[ConnectionEventType.INITIAL_STATE_TRANSFER], "end"],
      [[ConnectionEventType.INITIAL_STATE_TRANSFER], new StatusError(Code.ResourceExhausted, "fell behind")],
      [[ConnectionEventType.INITIAL_STATE_TRANSFER], "hang"],
    ];
    let opened = 0;
    const open = async function* (signal: AbortSignal): AsyncGenerator<ConnectionEvent> {
      const [events, end] = plans[opened++] ?? [[], "hang"];
      for (const t of events) yield ev(t);
      if (end === "hang") await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
      else if (end !== "end") throw end;
    };
    const done = watchConnectionEvents(open, (e) => seen.push(e.type), { signal: ac.signal, log: silentLogger, clock });
    await until(() => opened === 1 && clock.pending() === 1);
    await clock.advance(200);
    // The second stream failed without a state transfer: the wait doubles.
    await until(() => opened === 2 && clock.pending() === 1);
    await clock.advance(399);
    expect(opened).to.equal(2);
    await clock.advance(1);
    await until(() => opened === 3 && clock.pending() === 1);
    await clock.advance(200);
    await until(() => opened === 4 && clock.pending() === 1);
    await clock.advance(200);
    await until(() => opened === 5 && seen.length === 5);
    ac.abort();
    await done;
    expect(seen).to.deep.equal([
      ConnectionEventType.INITIAL_STATE_TRANSFER,
      ConnectionEventType.UPDATE,
      ConnectionEventType.INITIAL_STATE_TRANSFER,
      ConnectionEventType.INITIAL_STATE_TRANSFER,
      ConnectionEventType.INITIAL_STATE_TRANSFER,
    ]);
    expect(clock.pending()).to.equal(0);
  });

  it("ends on a failure another try would not fix", async () => {
    const ac = new AbortController();
    const open = async function* (): AsyncGenerator<ConnectionEvent> {
      yield* [];
      throw new StatusError(Code.PermissionDenied, "policy service_connection denied");
    };
    const err = await watchConnectionEvents(open, () => undefined, { signal: ac.signal, log: silentLogger, clock: new MockClock() }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as StatusError).code).to.equal(Code.PermissionDenied);
  });
});
