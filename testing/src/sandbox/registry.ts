/** The sandbox's registry: in-memory stores behind the real registry chain, restartable on the same URL. */
import { type Channel, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { authorize, createMemoryStore, createRegistryClient, createRegistryServer, serveRegistry } from "@nsm-ts/sdk/registry";
import { killServer, type SandboxEnv } from "./env.js";
import type { SandboxRegistry } from "./types.js";

/** A restarted nsmgr-proxy must be reached again at once. */
const FAST_RECONNECT = { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 1000 };

/** The registry part and how the builder ends it for good. */
export interface RegistryPart {
  readonly registry: SandboxRegistry;
  /** Closes the sandbox's channel to the registry and kills it. */
  close(): Promise<void>;
}

/** Starts the registry and dials it for the part's own `nse` handler. */
export async function createRegistry(env: SandboxEnv, interdomain?: { proxyRegistryUrl?: string }): Promise<RegistryPart> {
  const url = await env.urlFor("registry");
  const proxyChannel: Channel | undefined =
    interdomain?.proxyRegistryUrl === undefined ? undefined : dial(interdomain.proxyRegistryUrl, { grpcOptions: FAST_RECONNECT });
  let server: NsmServer | undefined;
  let stores: { close(): Promise<void> }[] = [];
  const start = async (): Promise<void> => {
    const nsStore = createMemoryStore("ns", { clock: env.clock });
    const nseStore = createMemoryStore("nse", { clock: env.clock });
    stores = [nsStore, nseStore];
    const chains = createRegistryServer({
      tokenGenerator: env.tokenGenerator("registry"),
      nsStore,
      nseStore,
      ...(env.expirePeriodMs === undefined ? {} : { expirePeriodMs: env.expirePeriodMs }),
      // Across domains registrations arrive through the registry proxies of other domains.
      ...(interdomain === undefined ? {} : { registrars: (id: string) => authorize.isNsmgrId(id) || /\/registry-proxy/.test(id) }),
      ...(proxyChannel === undefined ? {} : { proxyRegistry: proxyChannel }),
    });
    const s = env.serverOf("registry");
    serveRegistry(s, chains, env.serveOpts);
    await s.listen(url);
    server = s;
  };
  const kill = async (): Promise<void> => {
    const s = server;
    server = undefined;
    await killServer(s);
    await Promise.allSettled(stores.map((st) => st.close()));
    stores = [];
  };
  await start();
  const channel: Channel = dial(url);
  const nse = createRegistryClient("nse", channel, { tokenGenerator: env.tokenGenerator("sandbox") });
  const ns = createRegistryClient("ns", channel, { tokenGenerator: env.tokenGenerator("sandbox") });
  return {
    registry: {
      url,
      get alive() {
        return server !== undefined;
      },
      nse,
      ns,
      kill,
      async restart() {
        await kill();
        await start();
      },
    },
    async close() {
      channel.close();
      proxyChannel?.close();
      await kill();
    },
  };
}
