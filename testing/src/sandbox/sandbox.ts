/**
 * The in-process sandbox: a registry and N nodes (nsmgr + forwarder, NOOP data plane) on loopback TCP or unix
 * sockets in a temp dir, plus helpers to add endpoints and clients and to kill or restart any part. Every part
 * runs the real chains over real gRPC, so scenario tests exercise the same code as the programs. Dev identities
 * (insecure mode) sign the tokens. `close()` leaves nothing behind: servers, channels, background work and the
 * temp dir are gone once it resolves.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import type { Connection } from "@nsm-ts/api/networkservice";
import {
  type NetworkServiceEndpoint,
  NetworkServiceEndpointSchema,
  NetworkServiceLabelsSchema,
  NetworkServiceSchema,
} from "@nsm-ts/api/registry";
import { type Clock, MockClock, realClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { type Channel, type ClientInterceptor, createServer, dial, type NsmServer, type ServerInterceptor } from "@nsm-ts/base/grpc";
import { devIdentity } from "@nsm-ts/base/identity";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { createTokenGenerator, type TokenGenerator } from "@nsm-ts/base/token";
import type { NetworkServiceElement } from "@nsm-ts/sdk/networkservice";
import {
  type ClientOptions,
  client,
  createForwarder,
  createNsmgr,
  type Endpoint,
  endpoint,
  type Forwarder,
  mechanisms,
  mechanismtranslation,
  type NsmClient,
  type Nsmgr,
  newServerView,
  passThrough,
} from "@nsm-ts/sdk/networkservice";
import type { NseHandler } from "@nsm-ts/sdk/registry";
import { createMemoryStore, createRegistryClient, createRegistryServer, serveRegistry } from "@nsm-ts/sdk/registry";

/** Options of `createSandbox`. */
export interface SandboxOptions {
  /** Number of nodes (nsmgr + forwarder each); default 1. */
  nodes?: number;
  /** Loopback TCP (`tcp://127.0.0.1:<port>`) or unix sockets in a temp dir; default "tcp". */
  transport?: "tcp" | "unix";
  /** Clock of every chain, token and store; a MockClock makes refresh, timeout and expiry instant. Default real. */
  clock?: "real" | MockClock;
  /** Lifetime of every token the parts generate; default 10 minutes (`NSM_MAX_TOKEN_LIFETIME`). */
  tokenLifetimeMs?: number;
  /** Registration lifetime without a refresh, at the registry and the nsmgrs; default 60 000 ms. */
  registryExpirePeriodMs?: number;
  /** Logger of every part; default silent. */
  log?: Logger;
  /**
   * Interceptors per part (tracing, metrics), by part name (`registry`, `nsmgr-0`, `forwarder-0`, endpoint and
   * client names): servers get `server`, the part's dialers and channel pools `client`. Default none.
   */
  interceptors?: (part: string) => SandboxInterceptors;
}

/** Interceptors of one sandbox part. */
export interface SandboxInterceptors {
  server?: ServerInterceptor[];
  client?: ClientInterceptor[];
}

/** A part of the sandbox that can be killed (abruptly: no unregistering, no closing) and restarted. */
export interface SandboxPart {
  /** Where the part listens (the same URL after a restart). */
  readonly url: string;
  /** True while it serves. */
  readonly alive: boolean;
  /** Stops serving at once: open streams break, background work ends, nothing is unregistered. */
  kill(): Promise<void>;
  /** Kills the part if it is alive and starts a fresh instance (no state kept) on the same URL. */
  restart(): Promise<void>;
}

/** The registry part. */
export interface SandboxRegistry extends SandboxPart {
  /** Endpoint registry handler talking to this registry over gRPC (for assertions such as Find). */
  readonly nse: NseHandler;
}

/** One node: an nsmgr and a forwarder. */
export interface SandboxNode {
  readonly index: number;
  /** The node name (`node-<index>`), also the `nodeName` label of its connections and endpoints. */
  readonly name: string;
  readonly nsmgr: SandboxPart & { readonly name: string; readonly instance: Nsmgr };
  readonly forwarder: SandboxForwarder;
}

/** A forwarder of the sandbox. */
export interface SandboxForwarder extends SandboxPart {
  readonly name: string;
  /** The running chain (the latest instance after a restart). */
  readonly instance: Forwarder;
}

/** Options of `addEndpoint`. */
export interface SandboxEndpointOptions {
  /** Endpoint name (registration and path segment). */
  name: string;
  /** Network services it serves (each is registered as a network service too). */
  services: string[];
  /** Labels of its services (the same for each). */
  labels?: Readonly<Record<string, string>>;
  /** Elements after the standard endpoint chain (counters, passthrough clients, failure injection). */
  additional?: NetworkServiceElement[];
  /** Register without serving; call `start()` later (an endpoint registered before it listens). Default true. */
  start?: boolean;
  /** Payload of the network services it registers; default "ETHERNET". */
  payload?: string;
}

/** An endpoint of the sandbox. */
export interface SandboxEndpoint extends SandboxPart {
  readonly name: string;
  /** Its registration as returned by the nsmgr. */
  readonly registration: NetworkServiceEndpoint;
  /** The running chain (undefined before `start()`). */
  readonly instance: Endpoint | undefined;
  /** Starts serving (when created with `start: false`). */
  start(): Promise<void>;
  /** Removes its registration (through its nsmgr) and stops refreshing it. */
  unregister(): Promise<void>;
}

/** Options of `addClient`: the standard client options minus those the sandbox provides. */
export type SandboxClientOptions = Partial<Omit<ClientOptions, "connectTo" | "tokenGenerator">> & {
  /** Lifetime of this client's tokens; default the sandbox's. */
  tokenLifetimeMs?: number;
};

/** A running sandbox. */
export interface Sandbox {
  readonly registry: SandboxRegistry;
  readonly nodes: readonly SandboxNode[];
  /** The clock every part uses. */
  readonly clock: Clock;
  /** Adds an endpoint on node `node` (index or node), registered through that node's nsmgr. */
  addEndpoint(node: number | SandboxNode, opts: SandboxEndpointOptions): Promise<SandboxEndpoint>;
  /** Adds another forwarder named `name` to node `node` (registered through its nsmgr). */
  addForwarder(node: number | SandboxNode, name: string): Promise<SandboxForwarder>;
  /** A standard client of node `node`'s nsmgr (NOOP mechanism, dev-mode token); disposed by `close()`. */
  addClient(node: number | SandboxNode, opts?: SandboxClientOptions): NsmClient;
  /**
   * Elements making an endpoint a passthrough: they request `service` from node `node`'s nsmgr as a client
   * named `<name>-client` and hand the connection back as the endpoint's own.
   */
  passthrough(node: number | SandboxNode, name: string, service: string): NetworkServiceElement[];
  /** A token generator for `name` (dev identity, the sandbox's lifetime and clock). */
  tokenGenerator(name: string): TokenGenerator;
  /** Stops everything and removes the temp dir. */
  close(): Promise<void>;
}

async function freeTcpUrl(): Promise<string> {
  const srv = createNetServer();
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", resolve);
  });
  const addr = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  if (addr === null || typeof addr === "string") throw new Error("sandbox: no TCP port");
  return `tcp://127.0.0.1:${addr.port}`;
}

/** Kill: a server shutdown without grace, so streams and calls end at once. */
async function stop(server: NsmServer | undefined): Promise<void> {
  if (server) await server.close({ graceMs: 0 });
}

/** Creates and starts a sandbox (see the header comment). */
export async function createSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const clock: Clock = opts.clock instanceof MockClock ? opts.clock : realClock;
  const serveOpts = { clock, log: opts.log ?? silentLogger };
  const log = opts.log ?? silentLogger;
  const dir = mkdtempSync(join(tmpdir(), "nsm-sb-"));
  const lifetimeMs = opts.tokenLifetimeMs ?? 10 * 60_000;
  const expirePeriodMs = opts.registryExpirePeriodMs;
  const generators = new Map<string, TokenGenerator>();
  const tokenGenerator = (name: string): TokenGenerator => {
    let g = generators.get(name);
    if (!g) {
      const id = devIdentity(name.replace(/[^A-Za-z0-9._-]/g, "-"));
      const gen = id.then((i) => createTokenGenerator(i, { maxTokenLifetimeMs: lifetimeMs, clock }));
      g = async (peer) => (await gen)(peer);
      generators.set(name, g);
    }
    return g;
  };
  const urlFor = async (name: string): Promise<string> =>
    opts.transport === "unix" ? `unix://${join(dir, `${name}.sock`)}` : freeTcpUrl();
  const ctx = (): CallContext => CallContext.create({ clock, log });
  const serverOf = (part: string): NsmServer => createServer({ logger: log, interceptors: opts.interceptors?.(part).server ?? [] });
  const dialOf = (part: string) => ({ interceptors: opts.interceptors?.(part).client ?? [] });
  const cleanups = new Set<() => Promise<void>>();
  const clients = new Set<NsmClient>();
  let clientCount = 0;

  // Registry.
  const registryUrl = await urlFor("registry");
  let registryServer: NsmServer | undefined;
  let registryStores: { close(): Promise<void> }[] = [];
  const startRegistry = async (): Promise<void> => {
    const nsStore = createMemoryStore("ns", { clock });
    const nseStore = createMemoryStore("nse", { clock });
    registryStores = [nsStore, nseStore];
    const chains = createRegistryServer({
      tokenGenerator: tokenGenerator("registry"),
      nsStore,
      nseStore,
      ...(expirePeriodMs === undefined ? {} : { expirePeriodMs }),
    });
    const server = serverOf("registry");
    serveRegistry(server, chains, serveOpts);
    await server.listen(registryUrl);
    registryServer = server;
  };
  const killRegistry = async (): Promise<void> => {
    const s = registryServer;
    registryServer = undefined;
    await stop(s);
    await Promise.allSettled(registryStores.map((st) => st.close()));
    registryStores = [];
  };
  await startRegistry();
  const registryChannel: Channel = dial(registryUrl);
  const registryFind = createRegistryClient("nse", registryChannel, { tokenGenerator: tokenGenerator("sandbox") });
  const registry: SandboxRegistry = {
    url: registryUrl,
    get alive() {
      return registryServer !== undefined;
    },
    nse: registryFind,
    kill: killRegistry,
    async restart() {
      await killRegistry();
      await startRegistry();
    },
  };

  const forwarderPart = async (name: string, nsmgrUrl: string): Promise<SandboxForwarder> => {
    const url = await urlFor(name);
    let fwd: Forwarder | undefined;
    let server: NsmServer | undefined;
    const start = async (): Promise<void> => {
      const f = createForwarder({
        name,
        url,
        nsmgrUrl,
        tokenGenerator: tokenGenerator(name),
        insecure: true,
        clock,
        log,
        dialOptions: dialOf(name),
      });
      const s = serverOf(name);
      f.serve(s, serveOpts);
      await s.listen(url);
      fwd = f;
      server = s;
      await f.register();
    };
    const kill = async (): Promise<void> => {
      const s = server;
      server = undefined;
      await stop(s);
      await fwd?.close();
    };
    await start();
    cleanups.add(kill);
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
  };

  // Nodes.
  const nodes: SandboxNode[] = [];
  for (let i = 0; i < (opts.nodes ?? 1); i++) {
    const nodeName = `node-${i}`;
    const nsmgrName = `nsmgr-${i}`;
    const fwdName = `forwarder-${i}`;
    const nsmgrUrl = await urlFor(nsmgrName);
    let nsmgr: Nsmgr | undefined;
    let nsmgrServer: NsmServer | undefined;
    const startNsmgr = async (): Promise<void> => {
      const n = createNsmgr({
        name: nsmgrName,
        url: nsmgrUrl,
        registryUrl,
        tokenGenerator: tokenGenerator(nsmgrName),
        insecure: true,
        clientInfo: { nodeName },
        excludedPrefixes: false,
        dialOptions: dialOf(nsmgrName),
        ...(expirePeriodMs === undefined ? {} : { expirePeriodMs }),
      });
      const server = serverOf(nsmgrName);
      n.serve(server, serveOpts);
      await server.listen(nsmgrUrl);
      nsmgr = n;
      nsmgrServer = server;
    };
    const killNsmgr = async (): Promise<void> => {
      const s = nsmgrServer;
      nsmgrServer = undefined;
      await stop(s);
      nsmgr?.close();
    };
    await startNsmgr();
    cleanups.add(killNsmgr);
    const forwarder = await forwarderPart(fwdName, nsmgrUrl);
    nodes.push({
      index: i,
      name: nodeName,
      nsmgr: {
        name: nsmgrName,
        url: nsmgrUrl,
        get instance() {
          return nsmgr as Nsmgr;
        },
        get alive() {
          return nsmgrServer !== undefined;
        },
        kill: killNsmgr,
        async restart() {
          await killNsmgr();
          await startNsmgr();
        },
      },
      forwarder,
    });
  }

  const nodeOf = (n: number | SandboxNode): SandboxNode => {
    const node = typeof n === "number" ? nodes[n] : n;
    if (!node) throw new RangeError(`sandbox: no node ${String(n)}`);
    return node;
  };

  const addEndpoint = async (n: number | SandboxNode, eo: SandboxEndpointOptions): Promise<SandboxEndpoint> => {
    const node = nodeOf(n);
    const url = await urlFor(`nse-${eo.name}`);
    const gen = tokenGenerator(eo.name);
    const nsmgrChannel = dial(node.nsmgr.url);
    const lifetime = new AbortController();
    const reg = createRegistryClient("nse", nsmgrChannel, { tokenGenerator: gen, signal: lifetime.signal, heal: true });
    // Network services belong to whoever registered them first; the sandbox registers them all as itself.
    const nsReg = createRegistryClient("ns", nsmgrChannel, { tokenGenerator: tokenGenerator("sandbox") });
    for (const s of eo.services) await nsReg.register(ctx(), create(NetworkServiceSchema, { name: s, payload: eo.payload ?? "ETHERNET" }));
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
        clock,
        log,
        additional: [mechanisms.newServer({ NOOP: passThrough }), ...(eo.additional ?? [])],
      });
      const s = serverOf(eo.name);
      ep.register(s);
      await s.listen(url);
      instance = ep;
      server = s;
    };
    const kill = async (): Promise<void> => {
      const s = server;
      server = undefined;
      await stop(s);
    };
    if (eo.start !== false) await start();
    const registration = await reg.register(ctx(), entry);
    registered = true;
    const close = async (): Promise<void> => {
      lifetime.abort();
      await kill();
      nsmgrChannel.close();
    };
    cleanups.add(close);
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
        await reg.unregister(ctx(), entry);
      },
    };
  };

  const addClient = (n: number | SandboxNode, co: SandboxClientOptions = {}): NsmClient => {
    const node = nodeOf(n);
    const name = co.name ?? `nsc-${clientCount++}`;
    const { tokenLifetimeMs, ...rest } = co;
    const gen =
      tokenLifetimeMs === undefined
        ? tokenGenerator(name)
        : (() => {
            const g = devIdentity(name).then((i) => createTokenGenerator(i, { maxTokenLifetimeMs: tokenLifetimeMs, clock }));
            return async (peer?: Parameters<TokenGenerator>[0]) => (await g)(peer);
          })();
    const c = client({
      insecure: true,
      clock,
      log,
      mechanismPreferences: [mechanisms.noop.mechanism()],
      interceptors: opts.interceptors?.(name).client ?? [],
      ...rest,
      name,
      connectTo: node.nsmgr.url,
      tokenGenerator: gen,
    });
    clients.add(c);
    return c;
  };

  const passthrough = (n: number | SandboxNode, name: string, service: string): NetworkServiceElement[] => {
    const node = nodeOf(n);
    const c = client({
      name: `${name}-client`,
      interceptors: opts.interceptors?.(`${name}-client`).client ?? [],
      connectTo: node.nsmgr.url,
      tokenGenerator: tokenGenerator(`${name}-client`),
      insecure: true,
      clock,
      log,
      refresh: false,
      heal: false,
      retry: false,
    });
    clients.add(c);
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

  return {
    registry,
    nodes,
    clock,
    addEndpoint,
    addForwarder: (n, name) => forwarderPart(name, nodeOf(n).nsmgr.url),
    addClient,
    passthrough,
    tokenGenerator,
    async close() {
      await Promise.allSettled([...clients].map((c) => c.dispose()));
      clients.clear();
      for (const c of [...cleanups].reverse()) await c().catch(() => undefined);
      cleanups.clear();
      registryChannel.close();
      await killRegistry();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
