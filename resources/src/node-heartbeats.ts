/**
 * The node side of node health: a forwarder (or any data-plane agent) registers its node with the NodeManager and
 * sends heartbeats on the injected clock until its signal aborts. Failures are logged and retried at the next
 * beat; a node deleted meanwhile is registered again.
 */
import type { NodeManager } from "@nsm-ts/api/resources";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import type { Client } from "@nsm-ts/base/grpc";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { Code, StatusError } from "@nsm-ts/base/status";

/** What a node says of itself. */
export interface NodeInfo {
  id: string;
  name?: string;
  tunnelIp?: string;
  labels?: Record<string, string>;
}

/** Options of `runNodeHeartbeats`. */
export interface NodeHeartbeatsOptions {
  /** Ends the heartbeats; the promise resolves then. */
  signal: AbortSignal;
  /** Time between heartbeats; default 10 000 ms (a third of the server's default timeout). */
  intervalMs?: number;
  clock?: Clock;
  log?: Logger;
}

const isCode = (err: unknown, code: Code): boolean => err instanceof StatusError && err.code === code;

/** Creates the node, or updates its name, tunnel IP and labels when it exists (keeping `drained`). */
async function register(client: Client<typeof NodeManager>, node: NodeInfo): Promise<void> {
  const fields = { id: node.id, name: node.name ?? node.id, tunnelIp: node.tunnelIp ?? "", labels: node.labels ?? {} };
  try {
    await client.createNode(fields);
  } catch (err) {
    if (!isCode(err, Code.AlreadyExists)) throw err;
    const cur = await client.getNode({ id: node.id });
    await client.updateNode({ ...fields, drained: cur.drained, revision: cur.revision });
  }
}

/** Registers `node` and sends a heartbeat every `intervalMs` until `signal` aborts. */
export async function runNodeHeartbeats(client: Client<typeof NodeManager>, node: NodeInfo, opts: NodeHeartbeatsOptions): Promise<void> {
  const clock = opts.clock ?? realClock;
  const log = opts.log ?? silentLogger;
  const intervalMs = opts.intervalMs ?? 10_000;
  let registered = false;
  while (!opts.signal.aborted) {
    try {
      if (!registered) {
        await register(client, node);
        registered = true;
      }
      await client.heartbeat({ id: node.id }, { signal: opts.signal });
    } catch (err) {
      if (opts.signal.aborted) return;
      if (isCode(err, Code.NotFound)) registered = false;
      log.warn({ err, node: node.id }, "resources: node heartbeat failed; trying again at the next beat");
    }
    try {
      await clock.sleep(intervalMs, opts.signal);
    } catch {
      return;
    }
  }
}
