/** The sandbox's registry: in-memory stores behind the real registry chain, restartable on the same URL. */
import { type Channel, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { createMemoryStore, createRegistryClient, createRegistryServer, serveRegistry } from "@nsm-ts/sdk/registry";
import { killServer, type SandboxEnv } from "./env.js";
import type { SandboxRegistry } from "./types.js";

/** The registry part and how the builder ends it for good. */
export interface RegistryPart {
  readonly registry: SandboxRegistry;
  /** Closes the sandbox's channel to the registry and kills it. */
  close(): Promise<void>;
}

/** Starts the registry and dials it for the part's own `nse` handler. */
export async function createRegistry(env: SandboxEnv): Promise<RegistryPart> {
  const url = await env.urlFor("registry");
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
  return {
    registry: {
      url,
      get alive() {
        return server !== undefined;
      },
      nse,
      kill,
      async restart() {
        await kill();
        await start();
      },
    },
    async close() {
      channel.close();
      await kill();
    },
  };
}
