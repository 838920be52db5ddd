/** A sandbox node: an nsmgr and its forwarder, each killable and restartable on its own URL. */
import type { NsmServer } from "@nsm-ts/base/grpc";
import { createForwarder, createNsmgr, type Forwarder, type Nsmgr } from "@nsm-ts/sdk/networkservice";
import { killServer, type SandboxEnv } from "./env.js";
import type { SandboxForwarder, SandboxNode } from "./types.js";

/** Starts forwarder `name`, registered through the nsmgr at `nsmgrUrl`; the sandbox's `close()` kills it. */
export async function createForwarderPart(env: SandboxEnv, name: string, nsmgrUrl: string): Promise<SandboxForwarder> {
  const url = await env.urlFor(name);
  let fwd: Forwarder | undefined;
  let server: NsmServer | undefined;
  const start = async (): Promise<void> => {
    const f = createForwarder({
      name,
      url,
      nsmgrUrl,
      tokenGenerator: env.tokenGenerator(name),
      insecure: true,
      clock: env.clock,
      log: env.log,
      dialOptions: { interceptors: env.clientInterceptors(name) },
    });
    const s = env.serverOf(name);
    f.serve(s, env.serveOpts);
    await s.listen(url);
    fwd = f;
    server = s;
    await f.register();
  };
  const kill = async (): Promise<void> => {
    const s = server;
    server = undefined;
    await killServer(s);
    await fwd?.close();
  };
  await start();
  env.cleanups.add(kill);
  return {
    name,
    url,
    get instance() {
      return fwd as Forwarder;
    },
    get alive() {
      return server !== undefined;
    },
    kill,
    async restart() {
      await kill();
      await start();
    },
  };
}

/** Starts node `index`: its nsmgr (talking to the registry at `registryUrl`), then its forwarder. */
export async function createNode(env: SandboxEnv, index: number, registryUrl: string): Promise<SandboxNode> {
  const nodeName = `node-${index}`;
  const nsmgrName = `nsmgr-${index}`;
  const nsmgrUrl = await env.urlFor(nsmgrName);
  let nsmgr: Nsmgr | undefined;
  let server: NsmServer | undefined;
  const start = async (): Promise<void> => {
    const n = createNsmgr({
      name: nsmgrName,
      url: nsmgrUrl,
      registryUrl,
      tokenGenerator: env.tokenGenerator(nsmgrName),
      insecure: true,
      clientInfo: { nodeName },
      excludedPrefixes: false,
      dialOptions: { interceptors: env.clientInterceptors(nsmgrName) },
      ...(env.expirePeriodMs === undefined ? {} : { expirePeriodMs: env.expirePeriodMs }),
    });
    const s = env.serverOf(nsmgrName);
    n.serve(s, env.serveOpts);
    await s.listen(nsmgrUrl);
    nsmgr = n;
    server = s;
  };
  const kill = async (): Promise<void> => {
    const s = server;
    server = undefined;
    await killServer(s);
    nsmgr?.close();
  };
  await start();
  env.cleanups.add(kill);
  const forwarder = await createForwarderPart(env, `forwarder-${index}`, nsmgrUrl);
  return {
    index,
    name: nodeName,
    nsmgr: {
      name: nsmgrName,
      url: nsmgrUrl,
      get instance() {
        return nsmgr as Nsmgr;
      },
      get alive() {
        return server !== undefined;
      },
      kill,
      async restart() {
        await kill();
        await start();
      },
    },
    forwarder,
  };
}
