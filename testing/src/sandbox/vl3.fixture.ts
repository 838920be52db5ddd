/**
 * vL3 on the sandbox: a prefix server (the registry's `ipam.IPAM/ManagePrefixes` pool, restartable on the same
 * URL) and vL3 endpoints built as cmd-nse-vl3 builds them — a prefix client, the vl3 and vl3mtu server elements
 * in the endpoint chain, and a peer mesh whose client chain carries the vl3 and vl3mtu client elements. A vL3
 * endpoint can be restarted as a process would be (prefix stream ended, fresh IPAM, fresh chain, same name).
 */
import { IPAM } from "@nsm-ts/api/ipam";
import { type Connection, State } from "@nsm-ts/api/networkservice";
import { type Channel, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { createPrefixPool, type PrefixPoolOptions } from "@nsm-ts/resources";
import { ipam, type NetworkServiceElement, type NsmClient, vl3mtu } from "@nsm-ts/sdk/networkservice";
import { createRegistryClient } from "@nsm-ts/sdk/registry";
import type { Sandbox, SandboxEndpoint } from "./index.js";

/** A prefix server on loopback; `restart` starts a fresh pool (optionally another configuration) on the same URL. */
export class PrefixServer {
  private server: NsmServer | undefined;
  url = "tcp://127.0.0.1:0";

  private constructor(private opts: PrefixPoolOptions) {}

  static async start(opts: PrefixPoolOptions): Promise<PrefixServer> {
    const s = new PrefixServer(opts);
    await s.listen();
    return s;
  }

  private async listen(): Promise<void> {
    const pool = createPrefixPool(this.opts);
    const server = createServer({});
    server.addService(IPAM, { managePrefixes: (reqs) => pool.serve(reqs) });
    this.url = await server.listen(this.url);
    this.server = server;
  }

  /** Stops at once (streams break, every prefix returns to the pool) and serves a fresh pool on the same URL. */
  async restart(opts: PrefixPoolOptions = this.opts): Promise<void> {
    await this.stop();
    this.opts = opts;
    await this.listen();
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    await s?.close({ graceMs: 0 });
  }
}

/** Swaps the element behind it (the vL3 endpoint's elements across a restart). */
class Slot implements NetworkServiceElement {
  readonly name = "vl3-slot";
  constructor(public current: NetworkServiceElement[]) {}
  request: NetworkServiceElement["request"] = (ctx, req, next) => this.run(0, ctx, req, next);
  close: NetworkServiceElement["close"] = (ctx, conn, next) => this.runClose(0, ctx, conn, next);
  private run(i: number, ...[ctx, req, next]: Parameters<NetworkServiceElement["request"]>): Promise<Connection> {
    const el = this.current[i];
    if (el === undefined) return next.request(ctx, req);
    return el.request(ctx, req, { request: (c, r) => this.run(i + 1, c, r, next), close: (c, x) => this.runClose(i + 1, c, x, next) });
  }
  private runClose(i: number, ...[ctx, conn, next]: Parameters<NetworkServiceElement["close"]>): Promise<void> {
    const el = this.current[i];
    if (el === undefined) return next.close(ctx, conn);
    return el.close(ctx, conn, { request: (c, r) => this.run(i + 1, c, r, next), close: (c, x) => this.runClose(i + 1, c, x, next) });
  }
}

/** One vL3 endpoint of the sandbox. */
export interface Vl3Endpoint {
  readonly name: string;
  readonly endpoint: SandboxEndpoint;
  /** The IPAM of the running instance. */
  readonly ipam: ipam.vl3.Vl3Ipam;
  readonly peers: ipam.vl3.Vl3Peers;
  /** Its client chain to peers. */
  readonly client: NsmClient;
  /** Restarts it as a process restarts: prefix given back, fresh IPAM and chain, the prefix asked for again. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** Options of `addVl3Endpoint`. */
export interface Vl3EndpointOptions {
  node: number;
  name: string;
  service: string;
  prefixServer: PrefixServer;
  /** The vL3 range; default derived as upstream. */
  globalPrefix?: string;
  /** Elements after the vL3 ones (recorders). */
  additional?: NetworkServiceElement[];
}

/** Adds a vL3 endpoint to `sb` (closed by the returned `close`, which `sb.close()` does not call). */
export async function addVl3Endpoint(sb: Sandbox, o: Vl3EndpointOptions): Promise<Vl3Endpoint> {
  const node = sb.nodes[o.node];
  if (node === undefined) throw new Error(`no node ${o.node}`);
  const opts = o.globalPrefix === undefined ? {} : { globalPrefix: o.globalPrefix };
  let channel: Channel = dial(o.prefixServer.url);
  const fresh = async (prefix?: string) => {
    const v = ipam.vl3.createVl3Ipam();
    const pc = ipam.vl3.startPrefixClient(channel, v, { retryIntervalMs: 50, ...(prefix ? { prefix } : {}), clock: sb.clock });
    await pc.ready;
    const mtu = vl3mtu.createVl3MtuState();
    return {
      v,
      pc,
      elements: [vl3mtu.newServer(mtu), ipam.vl3.newServer(v, opts), ...(o.additional ?? [])],
      clientElements: [vl3mtu.newClient(mtu), ipam.vl3.newClient(v)],
    };
  };
  let cur = await fresh();
  const slot = new Slot(cur.elements);
  const endpoint = await sb.addEndpoint(node, { name: o.name, services: [o.service], payload: "IP", additional: [slot] });
  // As cmd-nse-vl3: a new prefix asks every client to refresh (REFRESH_REQUESTED in the endpoint's monitor).
  const askRefresh = (): void => {
    const m = endpoint.instance?.monitor;
    for (const c of m?.connections() ?? []) m?.setState(c.id, State.REFRESH_REQUESTED);
  };
  let unsubscribe = cur.v.subscribe(askRefresh);
  const registryChannel = dial(node.nsmgr.url);
  const lifetime = new AbortController();
  const registry = createRegistryClient("nse", registryChannel, { tokenGenerator: sb.tokenGenerator(o.name), signal: lifetime.signal });
  const clientSlot = new Slot(cur.clientElements);
  const client = sb.addClient(node, { name: o.name, additional: [clientSlot] });
  const peers = ipam.vl3.createVl3Peers({
    name: o.name,
    networkService: o.service,
    registry,
    client,
    retryIntervalMs: 50,
    clock: sb.clock,
  });
  return {
    name: o.name,
    endpoint,
    get ipam() {
      return cur.v;
    },
    peers,
    client,
    async restart() {
      const held = cur.pc.prefix;
      await cur.pc.close();
      channel.close();
      channel = dial(o.prefixServer.url);
      unsubscribe();
      cur = await fresh(held);
      unsubscribe = cur.v.subscribe(askRefresh);
      slot.current = cur.elements;
      clientSlot.current = cur.clientElements;
      await endpoint.restart();
    },
    async close() {
      unsubscribe();
      await peers.close();
      lifetime.abort();
      await cur.pc.close();
      channel.close();
      registryChannel.close();
    },
  };
}

/** The IPv4 address (no length) of a connection's client side. */
export function srcOf(c: Connection): string {
  return (c.context?.ipContext?.srcIpAddrs[0] ?? "").split("/")[0] ?? "";
}

/** A connection's path as names. */
export function pathOf(c: Connection): string[] {
  return c.path?.pathSegments.map((s) => s.name) ?? [];
}
