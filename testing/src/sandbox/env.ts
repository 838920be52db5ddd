/**
 * What every part of one sandbox shares: clock and logger, the temp dir, one token generator per name, URLs,
 * gRPC servers and interceptors per part, and the cleanups and clients `close()` ends. Internal to the sandbox.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Clock, MockClock, realClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { type ClientInterceptor, createServer, type NsmServer } from "@nsm-ts/base/grpc";
import { devIdentity } from "@nsm-ts/base/identity";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { createTokenGenerator, type TokenGenerator } from "@nsm-ts/base/token";
import type { NsmClient } from "@nsm-ts/sdk/networkservice";
import { freePort } from "../net/index.js";
import type { SandboxOptions } from "./options.js";

/** The shared plumbing of one sandbox, built by `createEnv`. */
export interface SandboxEnv {
  readonly clock: Clock;
  readonly log: Logger;
  /** Clock and logger of every served chain. */
  readonly serveOpts: { readonly clock: Clock; readonly log: Logger };
  /** Holds the unix sockets; `close()` removes it. */
  readonly dir: string;
  /** `SandboxOptions.registryExpirePeriodMs` as given; undefined leaves the registry's and nsmgrs' default. */
  readonly expirePeriodMs: number | undefined;
  /** The token generator of `name` (dev identity, the sandbox's lifetime and clock), made once per name. */
  tokenGenerator(name: string): TokenGenerator;
  /** A fresh URL for part `name` in the sandbox's transport. */
  urlFor(name: string): Promise<string>;
  /** A context for the sandbox's own calls (registrations). */
  ctx(): CallContext;
  /** A gRPC server for part `part`, with its server interceptors. */
  serverOf(part: string): NsmServer;
  /** The client interceptors of part `part`. */
  clientInterceptors(part: string): ClientInterceptor[];
  /** How to stop each part; `close()` runs them newest first. */
  readonly cleanups: Set<() => Promise<void>>;
  /** Clients `close()` disposes. */
  readonly clients: Set<NsmClient>;
}

/** A TCP URL on a free loopback port (chosen as `freePort` says: no outgoing connection can hold it meanwhile). */
async function freeTcpUrl(): Promise<string> {
  return `tcp://127.0.0.1:${await freePort()}`;
}

/** Kill: a server shutdown without grace, so streams and calls end at once. */
export async function killServer(server: NsmServer | undefined): Promise<void> {
  if (server) await server.close({ graceMs: 0 });
}

/** Builds the plumbing of a sandbox and creates its temp dir. */
export function createEnv(opts: SandboxOptions): SandboxEnv {
  const clock: Clock = opts.clock instanceof MockClock ? opts.clock : realClock;
  const log = opts.log ?? silentLogger;
  const dir = mkdtempSync(join(tmpdir(), "nsm-sb-"));
  const lifetimeMs = opts.tokenLifetimeMs ?? 10 * 60_000;
  const generators = new Map<string, TokenGenerator>();
  return {
    clock,
    log,
    serveOpts: { clock, log },
    dir,
    expirePeriodMs: opts.registryExpirePeriodMs,
    tokenGenerator(name) {
      let g = generators.get(name);
      if (!g) {
        const id = devIdentity(name.replace(/[^A-Za-z0-9._-]/g, "-"));
        const gen = id.then((i) => createTokenGenerator(i, { maxTokenLifetimeMs: lifetimeMs, clock }));
        g = async (peer) => (await gen)(peer);
        generators.set(name, g);
      }
      return g;
    },
    urlFor: async (name) => (opts.transport === "unix" ? `unix://${join(dir, `${name}.sock`)}` : freeTcpUrl()),
    ctx: () => CallContext.create({ clock, log }),
    serverOf: (part) => createServer({ log, interceptors: opts.interceptors?.(part).server ?? [] }),
    clientInterceptors: (part) => opts.interceptors?.(part).client ?? [],
    cleanups: new Set(),
    clients: new Set(),
  };
}
