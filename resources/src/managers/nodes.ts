/**
 * Nodes of the data plane and their health. A node is IN_SERVICE while its heartbeats arrive within the heartbeat
 * timeout and it is not drained; a sweep on the injected clock takes nodes whose heartbeats stopped out of
 * service. Heartbeats are stored at most every third of the timeout (a heartbeat that changes nothing else
 * writes nothing), so a fleet of nodes costs few writes and watch events; every write compares revisions, so
 * replicas sweeping the same shared store never undo each other.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { type Node, type NodeHeartbeat, NodeSchema, NodeState } from "@nsm-ts/api/resources";
import type { Clock } from "@nsm-ts/base/clock";
import type { Logger } from "@nsm-ts/base/log";
import { Code, StatusError } from "@nsm-ts/base/status";
import type { WriteCaller } from "../store.js";
import { canonicalIp, need } from "./fields.js";
import type { Records } from "./records.js";

/** Default time without a heartbeat after which a node goes out of service. */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 30_000;

/** The node manager (`ResourceManagers.nodes`). */
export class Nodes {
  constructor(
    private readonly records: Records,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** Time without a heartbeat after which a node goes out of service. */
    readonly heartbeatTimeoutMs: number,
  ) {}

  /** Creates a node; it is OUT_OF_SERVICE until its first heartbeat. */
  async create(n: Node, caller?: WriteCaller): Promise<Node> {
    const id = n.id || randomUUID();
    const value = this.withState(create(NodeSchema, { ...this.fields(n), id, lastHeartbeatMs: "0" }));
    return this.records.commitOne<Node>({ type: "create", kind: "node", id, value, refs: [] }, caller);
  }

  /** Changes name, tunnel IP, labels and `drained`; the state follows. */
  async update(n: Node, caller?: WriteCaller): Promise<Node> {
    const cur = await this.records.get<Node>("node", need(n.id, "id"));
    const value = this.withState(create(NodeSchema, { ...this.fields(n), id: cur.id, lastHeartbeatMs: cur.lastHeartbeatMs }));
    return this.records.commitOne<Node>({ type: "update", kind: "node", id: cur.id, value, refs: [], revision: n.revision }, caller);
  }

  /** Records a heartbeat: writes when the state changes or the stored one is a third of the timeout old. */
  async heartbeat(h: NodeHeartbeat, caller?: WriteCaller): Promise<Node> {
    for (let attempt = 0; ; attempt++) {
      const cur = await this.records.get<Node>("node", need(h.id, "id"));
      const now = this.clock.now();
      const next = this.withState(create(NodeSchema, { ...cur, lastHeartbeatMs: String(now), revision: "" }));
      const stale = now - Number(cur.lastHeartbeatMs) >= this.heartbeatTimeoutMs / 3;
      if (!stale && next.state === cur.state && next.reason === cur.reason) return cur;
      try {
        return await this.records.commitOne<Node>(
          { type: "update", kind: "node", id: cur.id, value: next, refs: [], revision: cur.revision },
          caller,
        );
      } catch (err) {
        // Another replica's sweep or heartbeat wrote in between: read again (a few times).
        if (!(err instanceof StatusError && err.code === Code.Aborted) || attempt >= 3) throw err;
      }
    }
  }

  /** Takes nodes whose heartbeats stopped out of service; resolves to their ids. */
  async sweep(): Promise<string[]> {
    const now = this.clock.now();
    const out: string[] = [];
    for (const rec of await this.records.store.list("node", { filter: (r) => (r.value as Node).state === NodeState.IN_SERVICE })) {
      const cur = { ...(rec.value as Node), revision: rec.revision };
      const next = this.withState(create(NodeSchema, { ...cur, revision: "" }), now);
      if (next.state === cur.state) continue;
      try {
        await this.records.commitOne<Node>({ type: "update", kind: "node", id: cur.id, value: next, refs: [], revision: cur.revision });
        out.push(cur.id);
        this.log.warn({ node: cur.id, lastHeartbeatMs: cur.lastHeartbeatMs }, "resources: node missed its heartbeats; out of service");
      } catch (err) {
        // A heartbeat (or another replica's sweep) got there first: the next sweep looks again.
        if (!(err instanceof StatusError && err.code === Code.Aborted)) throw err;
      }
    }
    return out;
  }

  /** Sweeps every `intervalMs` (default a third of the timeout) on the clock until `signal` aborts. */
  startHealth(signal: AbortSignal, intervalMs = Math.max(1, Math.floor(this.heartbeatTimeoutMs / 3))): void {
    const loop = async (): Promise<void> => {
      while (!signal.aborted) {
        try {
          await this.clock.sleep(intervalMs, signal);
        } catch {
          return; // aborted
        }
        await this.sweep().catch((err: unknown) => this.log.warn({ err }, "resources: node health sweep failed; trying again"));
      }
    };
    void loop();
  }

  private fields(n: Node): Pick<Node, "name" | "tunnelIp" | "labels" | "drained"> {
    return { name: n.name, tunnelIp: n.tunnelIp === "" ? "" : canonicalIp(n.tunnelIp, "tunnel_ip"), labels: n.labels, drained: n.drained };
  }

  /** The node with `state` and `reason` as its heartbeat time and `drained` make them at `now`. */
  private withState(n: Node, now = this.clock.now()): Node {
    const last = Number(n.lastHeartbeatMs);
    if (n.drained) return { ...n, state: NodeState.OUT_OF_SERVICE, reason: "drained" };
    if (last === 0) return { ...n, state: NodeState.OUT_OF_SERVICE, reason: "no heartbeat yet" };
    if (now - last > this.heartbeatTimeoutMs)
      return { ...n, state: NodeState.OUT_OF_SERVICE, reason: `no heartbeat since ${new Date(last).toISOString()}` };
    return { ...n, state: NodeState.IN_SERVICE, reason: "" };
  }
}
