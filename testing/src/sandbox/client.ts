/** Sandbox clients: standard clients of a node's nsmgr, and the client half of passthrough endpoints. */
import type { Connection } from "@nsm-ts/api/networkservice";
import { devIdentity } from "@nsm-ts/base/identity";
import { createTokenGenerator, type TokenGenerator } from "@nsm-ts/base/token";
import {
  client,
  mechanisms,
  mechanismtranslation,
  type NetworkServiceElement,
  type NsmClient,
  newServerView,
} from "@nsm-ts/sdk/networkservice";
import type { SandboxEnv } from "./env.js";
import type { SandboxClientOptions } from "./options.js";
import type { SandboxNode } from "./types.js";

/** The client side of a sandbox; unnamed clients are numbered per sandbox (`nsc-0`, `nsc-1`, …). */
export interface SandboxClients {
  /** See `Sandbox.addClient`. */
  add(node: SandboxNode, opts?: SandboxClientOptions): NsmClient;
  /** See `Sandbox.passthrough`. */
  passthrough(node: SandboxNode, name: string, service: string): NetworkServiceElement[];
}

/** Creates the client side of the sandbox of `env`. */
export function createClients(env: SandboxEnv): SandboxClients {
  let count = 0;
  const { clock, log } = env;

  const add = (node: SandboxNode, co: SandboxClientOptions = {}): NsmClient => {
    const name = co.name ?? `nsc-${count++}`;
    const { tokenLifetimeMs, ...rest } = co;
    const gen =
      tokenLifetimeMs === undefined
        ? env.tokenGenerator(name)
        : (() => {
            const g = devIdentity(name).then((i) => createTokenGenerator(i, { maxTokenLifetimeMs: tokenLifetimeMs, clock }));
            return async (peer?: Parameters<TokenGenerator>[0]) => (await g)(peer);
          })();
    const c = client({
      insecure: true,
      clock,
      log,
      mechanismPreferences: [mechanisms.noop.mechanism()],
      interceptors: env.clientInterceptors(name),
      ...rest,
      name,
      connectTo: node.nsmgr.url,
      tokenGenerator: gen,
    });
    env.clients.add(c);
    return c;
  };

  const passthrough = (node: SandboxNode, name: string, service: string): NetworkServiceElement[] => {
    const c = client({
      name: `${name}-client`,
      interceptors: env.clientInterceptors(`${name}-client`),
      connectTo: node.nsmgr.url,
      tokenGenerator: env.tokenGenerator(`${name}-client`),
      insecure: true,
      clock,
      log,
      refresh: false,
      heal: false,
      retry: false,
    });
    env.clients.add(c);
    const redirect: NetworkServiceElement = {
      name: "sandbox-passthrough",
      async request(ctx, req, next) {
        const conn = req.connection as Connection;
        const own = { service: conn.networkService, nse: conn.networkServiceEndpointName, labels: conn.labels };
        conn.networkService = service;
        conn.networkServiceEndpointName = "";
        const out = await next.request(ctx, req);
        out.networkService = own.service;
        out.networkServiceEndpointName = own.nse;
        return out;
      },
      async close(ctx, conn, next) {
        conn.networkService = service;
        conn.networkServiceEndpointName = "";
        await next.close(ctx, conn);
      },
    };
    return [newServerView(), redirect, mechanismtranslation.newClient(), mechanisms.noop.newClient(), c.element];
  };

  return { add, passthrough };
}
