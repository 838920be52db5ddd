/**
 * Sandbox endpoints: the standard endpoint chain (NOOP mechanism) on its own server, registered (with its
 * network services) through a node's nsmgr and kept registered until it is killed or unregistered.
 */
import { create } from "@bufbuild/protobuf";
import { NetworkServiceEndpointSchema, NetworkServiceLabelsSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import { dial, type NsmServer } from "@nsm-ts/base/grpc";
import { type Endpoint, endpoint, handler, mechanisms, passThrough } from "@nsm-ts/sdk/networkservice";
import { createRegistryClient } from "@nsm-ts/sdk/registry";
import { killServer, type SandboxEnv } from "./env.js";
import type { SandboxEndpointOptions } from "./options.js";
import type { SandboxEndpoint, SandboxNode } from "./types.js";

/** Adds an endpoint on `node` (see `Sandbox.addEndpoint`). */
export async function createEndpoint(env: SandboxEnv, node: SandboxNode, eo: SandboxEndpointOptions): Promise<SandboxEndpoint> {
  const url = await env.urlFor(`nse-${eo.name}`);
  const gen = env.tokenGenerator(eo.name);
  const nsmgrChannel = dial(node.nsmgr.url);
  const lifetime = new AbortController();
  const reg = createRegistryClient("nse", nsmgrChannel, { tokenGenerator: gen, signal: lifetime.signal, heal: true });
  // Network services belong to whoever registered them first; the sandbox registers them all as itself.
  const nsReg = createRegistryClient("ns", nsmgrChannel, { tokenGenerator: env.tokenGenerator("sandbox") });
  for (const s of eo.services)
    await nsReg.register(env.ctx(), create(NetworkServiceSchema, { name: s, payload: eo.payload ?? "ETHERNET" }));
  const entry = create(NetworkServiceEndpointSchema, {
    name: eo.name,
    url,
    networkServiceNames: [...eo.services],
    networkServiceLabels: Object.fromEntries(
      eo.services.map((s) => [s, create(NetworkServiceLabelsSchema, { labels: { ...(eo.labels ?? {}) } })]),
    ),
  });
  let server: NsmServer | undefined;
  let instance: Endpoint | undefined;
  let registered = false;
  const start = async (): Promise<void> => {
    const ep = endpoint({
      name: eo.name,
      tokenGenerator: gen,
      insecure: true,
      clock: env.clock,
      log: env.log,
      additional: [mechanisms.newServer({ NOOP: passThrough }), ...(eo.additional ?? [])],
    });
    const s = env.serverOf(eo.name);
    ep.serve(s);
    await s.listen(url);
    instance = ep;
    server = s;
  };
  // Instances that were killed: a crashed process takes its timers along, a killed in-process chain does not.
  const crashed: Endpoint[] = [];
  const kill = async (): Promise<void> => {
    const s = server;
    server = undefined;
    if (s && instance) crashed.push(instance);
    await killServer(s);
  };
  /** Ends what killed instances still hold (their timeout timers on a MockClock): once, when the sandbox closes. */
  const forgetCrashed = async (): Promise<void> => {
    for (const ep of crashed.splice(0)) {
      const h = handler(ep.element);
      for (const conn of ep.monitor.connections()) await h.close(env.ctx(), conn).catch(() => undefined);
    }
  };
  if (eo.start !== false) await start();
  const registration = await reg.register(env.ctx(), entry);
  registered = true;
  const close = async (): Promise<void> => {
    lifetime.abort();
    await kill();
    await forgetCrashed();
    nsmgrChannel.close();
  };
  env.cleanups.add(close);
  return {
    name: eo.name,
    url,
    registration,
    get instance() {
      return instance;
    },
    get alive() {
      return server !== undefined;
    },
    start,
    kill: async () => {
      // A dead endpoint stops refreshing its registration too (the process is gone).
      lifetime.abort();
      await kill();
    },
    async restart() {
      await kill();
      await start();
    },
    async unregister() {
      if (!registered) return;
      registered = false;
      await reg.unregister(env.ctx(), entry);
    },
  };
}
