/**
 * Test support for the heal element: a fake next-hop monitor stream the test drives, connection events as the next
 * hop sees them, and the client chain heal sits in (updatepath → begin → metadata → clienturl → heal → …).
 */
import { clone, create } from "@bufbuild/protobuf";
import {
  type Connection,
  type ConnectionEvent,
  ConnectionEventSchema,
  ConnectionEventType,
  ConnectionSchema,
  type MonitorScopeSelector,
  type NetworkServiceRequest,
  State,
} from "@nsm-ts/api/networkservice";
import { StatusError } from "@nsm-ts/base/status";
import {
  begin,
  chain,
  clienturl,
  handler,
  type heal,
  metadata,
  type NetworkServiceElement,
  type NetworkServiceHandler,
  updatepath,
} from "@nsm-ts/sdk/networkservice";
import { newCheck } from "../elements/index.js";

/** One open fake monitor stream: `push` feeds it events, an error to throw, or its end. */
export class FakeMonitorStream {
  private queue: Array<ConnectionEvent | StatusError | "end"> = [];
  private wake: (() => void) | undefined;
  closed = false;
  constructor(
    readonly url: string,
    readonly selector: MonitorScopeSelector,
  ) {}
  push(item: ConnectionEvent | StatusError | "end"): void {
    this.queue.push(item);
    this.wake?.();
  }
  async *run(signal: AbortSignal): AsyncGenerator<ConnectionEvent> {
    const onAbort = (): void => this.wake?.();
    signal.addEventListener("abort", onAbort);
    try {
      for (;;) {
        if (signal.aborted) return;
        const item = this.queue.shift();
        if (item === "end") return;
        if (item instanceof StatusError) throw item;
        if (item) {
          yield item;
          continue;
        }
        await new Promise<void>((r) => (this.wake = r));
      }
    } finally {
      this.closed = true;
      signal.removeEventListener("abort", onAbort);
    }
  }
}

/** A MonitorSource the test drives: it sees every subscription and feeds events into it. */
export class FakeMonitor {
  readonly streams: FakeMonitorStream[] = [];
  /** Whether the next hop knows the watched connection: decides the initial state transfer of new streams. */
  knows = true;
  /** The state the next hop reports for the connection in the initial state transfer. */
  initialState = State.UP;
  private waiters: Array<(s: FakeMonitorStream) => void> = [];
  readonly source: heal.MonitorSource = (url, selector, signal) => {
    const s = new FakeMonitorStream(url, selector);
    const mine = create(ConnectionSchema, { id: "c1", networkService: "ns", path: { index: 0, pathSegments: [...selector.pathSegments] } });
    s.push(connectionEvent(ConnectionEventType.INITIAL_STATE_TRANSFER, this.knows ? [atNextHop(mine, this.initialState)] : []));
    this.streams.push(s);
    for (const w of this.waiters.splice(0)) w(s);
    return s.run(signal);
  };
  nextStream(): Promise<FakeMonitorStream> {
    return new Promise((r) => this.waiters.push(r));
  }
  get open(): number {
    return this.streams.filter((s) => !s.closed).length;
  }
}

/** A monitor event of `type` carrying `conns`. */
export function connectionEvent(type: ConnectionEventType, conns: Connection[]): ConnectionEvent {
  const connections: Record<string, Connection> = {};
  for (const c of conns) connections[c.id] = c;
  return create(ConnectionEventSchema, { type, connections });
}

/** The next hop's view of a connection: our segment plus its own, index 1. */
export function atNextHop(conn: Connection, state = State.UP): Connection {
  const c = clone(ConnectionSchema, conn);
  c.path?.pathSegments.push({ $typeName: "connection.PathSegment", name: "nsmgr", id: "hop-1", token: "", metrics: {} });
  if (c.path) c.path.index = 1;
  c.id = "hop-1";
  c.state = state;
  return c;
}

/** Lets pending promise callbacks and setImmediate work run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
}

/**
 * The client chain `healer` is tested in, as client "nsc" with next hop `url`: updatepath, begin, metadata,
 * clienturl, `healer`, `counter`, then the next hop's stand-in, which `beforeRequest` sees every Request at.
 */
export function createHealChain(
  url: string,
  healer: heal.HealClient,
  counter: NetworkServiceElement,
  beforeRequest: (req: NetworkServiceRequest) => void,
): NetworkServiceHandler {
  return handler(
    chain(
      updatepath.newClient("nsc"),
      begin.newClient(),
      metadata.newClient(),
      clienturl.newClient(url),
      healer,
      counter,
      newCheck({ beforeRequest: (_ctx, req) => beforeRequest(req) }),
    ),
  );
}
