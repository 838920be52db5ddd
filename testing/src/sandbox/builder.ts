/**
 * The in-process sandbox: a registry and N nodes (nsmgr + forwarder, NOOP data plane) on loopback TCP or unix
 * sockets in a temp dir, plus helpers to add endpoints and clients and to kill or restart any part. Every part
 * runs the real chains over real gRPC, so scenario tests exercise the same code as the programs. Dev identities
 * (insecure mode) sign the tokens. `close()` leaves nothing behind: servers, channels, background work and the
 * temp dir are gone once it resolves.
 */
import { rmSync } from "node:fs";
import { createClients } from "./client.js";
import { createDomainParts, domainUrls, publish } from "./domain.js";
import { createEndpoint } from "./endpoint.js";
import { createEnv } from "./env.js";
import { createForwarderPart, createNode } from "./node.js";
import type { SandboxOptions } from "./options.js";
import { createRegistry } from "./registry.js";
import type { Sandbox, SandboxNode } from "./types.js";

/** Creates and starts a sandbox (see the header comment). */
export async function createSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const env = createEnv(opts);
  const d = opts.domain;
  if (d && opts.transport === "unix") throw new Error("sandbox: an interdomain sandbox needs the tcp transport (DNS publishes ip:port)");
  let closeRegistry: () => Promise<void> = async () => undefined;
  /** Stops what has started, newest first; also when the sandbox could not be built, so a failed start leaks nothing. */
  const closeAll = async (): Promise<void> => {
    await Promise.allSettled([...env.clients].map((c) => c.dispose()));
    env.clients.clear();
    for (const c of [...env.cleanups].reverse()) await c().catch(() => undefined);
    env.cleanups.clear();
    await closeRegistry();
    rmSync(env.dir, { recursive: true, force: true });
  };
  try {
    const urls = d && !d.floating ? await domainUrls(env) : undefined;
    const built = await createRegistry(env, d === undefined ? undefined : urls === undefined ? {} : { proxyRegistryUrl: urls.nsmgrProxy });
    const registry = built.registry;
    closeRegistry = built.close;
    const edge = d && urls ? await createDomainParts(env, d, urls, registry.url) : undefined;
    if (d) publish(d, registry.url, urls);
    const nodes: SandboxNode[] = [];
    for (let i = 0; i < (opts.nodes ?? 1); i++) nodes.push(await createNode(env, i, registry.url));
    const nodeOf = (n: number | SandboxNode): SandboxNode => {
      const node = typeof n === "number" ? nodes[n] : n;
      if (!node) throw new RangeError(`sandbox: no node ${String(n)}`);
      return node;
    };
    const clients = createClients(env);

    return {
      registry,
      domain: d?.name,
      edge,
      nodes,
      clock: env.clock,
      addEndpoint: (n, eo) => createEndpoint(env, nodeOf(n), eo),
      addForwarder: (n, name) => createForwarderPart(env, name, nodeOf(n).nsmgr.url),
      addClient: (n, co) => clients.add(nodeOf(n), co),
      passthrough: (n, name, service) => clients.passthrough(nodeOf(n), name, service),
      tokenGenerator: env.tokenGenerator,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
