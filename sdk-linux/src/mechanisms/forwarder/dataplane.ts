/**
 * The kernel side of one forwarder cross-connect. Local (KERNEL ↔ KERNEL): one veth pair created straight
 * into the two pod namespaces under their final names. Remote (KERNEL ↔ VXLAN): a veth pair with the pod end
 * in the pod and the other end in the forwarder's netns, joined there to a VXLAN device by a bridge (or tc
 * redirects). Every link carries the alias `nsm-ts:<owner>:<connection id>:<role>`; removal is by that alias,
 * never by name alone.
 */
import type { Logger } from "@nsm-ts/base/log";
import { Code, fail, StatusError } from "@nsm-ts/base/status";
import { type CommandRunner, runCommand } from "../../exec.js";
import { classifyIpError, type IpExecutor, type IpLine } from "../../executor.js";
import { hashedIfName, ownerAlias, validateIfName } from "../../names.js";
import { type Netns, openNetns } from "../../netns.js";
import { Batch } from "../../ops/batch.js";
import { getLink, getLinks, type LinkInfo, listLinks } from "../../ops/read.js";
import { Coalescer } from "./coalescer.js";
import { legConfig, neighborKey, routeKey, stableMac } from "./context.js";
import { type Applied, namesIn, type PodState, type RemoteJoin, Role, type XconnectSpec } from "./xconnect.js";

function sameSet(a: readonly string[], b: readonly string[]): { removed: string[]; added: string[] } {
  return { removed: a.filter((x) => !b.includes(x)), added: b.filter((x) => !a.includes(x)) };
}

/** Programs and removes cross-connects of one owner (forwarder). */
export class KernelDataplane {
  readonly #exec: IpExecutor;
  readonly #owner: string;
  readonly #own: () => Promise<Netns>;
  readonly #log: Logger;
  readonly #join: RemoteJoin;
  readonly #run: CommandRunner;
  readonly #lists = new Coalescer<Netns, LinkInfo[]>((nss) => this.#listAll(nss[0] as Netns, nss.length));
  readonly #named = new Coalescer<{ ns: Netns; names: readonly string[] }, Map<string, LinkInfo>>((items) => this.#getNamed(items));
  readonly #deletes = new Coalescer<{ ns: Netns; names: string[] }, string[]>((items) => this.#deleteAll(items));

  /** `own` resolves the forwarder's netns (where VXLAN devices and bridges live). */
  constructor(
    exec: IpExecutor,
    owner: string,
    own: () => Promise<Netns>,
    log: Logger,
    join: RemoteJoin = "bridge",
    run: CommandRunner = runCommand,
  ) {
    this.#join = join;
    this.#run = run;
    this.#exec = exec;
    this.#owner = owner;
    this.#own = own;
    this.#log = log;
  }

  /** The alias of one link of a connection. */
  alias(connectionId: string, role: string): string {
    return ownerAlias({ owner: this.#owner, connectionId, role });
  }

  /** The alias prefix selecting exactly the links of one connection. */
  connectionPrefix(connectionId: string): string {
    return `${ownerAlias({ owner: this.#owner, connectionId })}:`;
  }

  /**
   * Makes the kernel match `spec`. With `prev` for the same legs and its links still in place, only the
   * differences are applied (no link is re-created). Without `prev` (a new connection, or the first refresh after a
   * forwarder restart) it creates the links; when they already exist with this connection's aliases and the same
   * parameters it adopts them (same ifindex, context re-applied); anything else left of the connection is removed by
   * alias and built anew.
   */
  async program(spec: XconnectSpec, prev: Applied | undefined): Promise<Applied> {
    const topology = JSON.stringify([spec.server, spec.client]);
    if (prev && prev.topology === topology && (await this.#intact(spec.connectionId, prev))) {
      await this.#update(spec, prev);
      return prev;
    }
    if (prev) await this.remove(spec.connectionId, prev.netnsUrls);
    const fresh = await this.#describe(spec, topology);
    try {
      await this.#build(spec, fresh);
      return fresh;
    } catch (err) {
      if (!prev && err instanceof StatusError && err.code === Code.AlreadyExists) {
        const adopted = await this.#adopt(spec, topology).catch((e: unknown) => {
          this.#log.info({ err: e, connId: spec.connectionId }, "kernel xconnect: leftovers cannot be adopted");
          return undefined;
        });
        if (adopted) return adopted;
      }
      await this.remove(spec.connectionId, fresh.netnsUrls).catch((e: unknown) =>
        this.#log.warn({ err: e, connId: spec.connectionId }, "kernel xconnect: cleanup after a failed create failed"),
      );
      // A leftover of this very connection that could not be adopted is gone now: one more try.
      if (err instanceof StatusError && err.code === Code.AlreadyExists) {
        const again = await this.#describe(spec, topology);
        try {
          await this.#build(spec, again);
          return again;
        } catch (err2) {
          await this.remove(spec.connectionId, again.netnsUrls).catch(() => undefined);
          throw err2;
        }
      }
      throw err;
    }
  }

  /** Takes over links this connection already has (same aliases, names and VXLAN parameters) and re-applies the context. */
  async #adopt(spec: XconnectSpec, topology: string): Promise<Applied | undefined> {
    const cand = await this.#describe(spec, topology);
    cand.mtu = undefined; // unknown: set it again
    for (const p of cand.pods) {
      const l = await getLink(this.#exec, p.netns, p.ifName);
      if (!l) return undefined;
      // Unknown earlier context: start from the addresses it has, so stale ones are removed.
      p.config = { addresses: l.addresses.filter((a) => !/^fe80:/i.test(a)), routes: [], neighbors: [], ...(l.mac ? { mac: l.mac } : {}) };
    }
    if (!(await this.#intact(spec.connectionId, cand))) return undefined;
    await this.#update(spec, cand);
    this.#log.info({ connId: spec.connectionId }, "kernel xconnect: adopted the links left by a previous forwarder");
    return cand;
  }

  /** The links `spec` needs, without touching the kernel. */
  async #describe(spec: XconnectSpec, topology: string): Promise<Applied> {
    const { server, client, connectionId: id, mtu } = spec;
    if (server.type === "KERNEL" && client.type === "KERNEL") {
      const [c, e] = await Promise.all([openNetns(server.netnsUrl), openNetns(client.netnsUrl)]);
      const pc: PodState = { netns: c, ifName: server.ifName, side: "client", config: legConfig(spec.context, "client", server.ifName) };
      const pe: PodState = {
        netns: e,
        ifName: client.ifName,
        side: "endpoint",
        config: legConfig(spec.context, "endpoint", client.ifName),
      };
      return { topology, pods: [pc, pe], mtu, netnsUrls: [server.netnsUrl, client.netnsUrl] };
    }
    const pod =
      server.type === "KERNEL"
        ? { leg: server, side: "client" as const }
        : client.type === "KERNEL"
          ? { leg: client, side: "endpoint" as const }
          : undefined;
    const vx = server.type === "VXLAN" ? server : client.type === "VXLAN" ? client : undefined;
    if (!pod || !vx) return fail(Code.Unimplemented, "kernel xconnect: VXLAN on both sides is not supported");
    const [p, f] = await Promise.all([openNetns(pod.leg.netnsUrl), this.#own()]);
    const ps: PodState = { netns: p, ifName: pod.leg.ifName, side: pod.side, config: legConfig(spec.context, pod.side, pod.leg.ifName) };
    const seed = `${this.#owner}/${id}`;
    const fwd = {
      veth: hashedIfName("nsv", seed),
      vxlan: hashedIfName("nsx", seed),
      bridge: this.#join === "bridge" ? hashedIfName("nsb", seed) : undefined,
      vni: vx.vni,
      remote: vx.remote,
      local: vx.local,
      port: vx.port,
    };
    return { topology, pods: [ps], fwd, mtu, netnsUrls: [pod.leg.netnsUrl, f.url] };
  }

  /** Creates the links of `ap` and applies its configuration. */
  async #build(spec: XconnectSpec, ap: Applied): Promise<void> {
    const id = spec.connectionId;
    const mtuOpt = ap.mtu === undefined ? {} : { mtu: ap.mtu };
    const roleOf = (p: PodState): string => (p.side === "client" ? Role.CLIENT : Role.ENDPOINT);
    const [first, second] = ap.pods;
    if (!first) return;
    if (!ap.fwd) {
      if (!second) return;
      await new Batch(this.#exec, first.netns)
        .addVeth({ name: first.ifName, peerName: second.ifName, peerNetns: second.netns, ...mtuOpt, alias: this.alias(id, roleOf(first)) })
        .commit();
      // Both ends exist now: configure them at the same time (a failure is cleaned up by the first end's alias).
      const bc = new Batch(this.#exec, first.netns);
      addConfig(bc, id, first);
      const be = new Batch(this.#exec, second.netns).setAlias(second.ifName, this.alias(id, roleOf(second)));
      addConfig(be, id, second);
      const done = await Promise.allSettled([bc.commit(), be.commit()]);
      for (const r of done) if (r.status === "rejected") throw r.reason;
      return;
    }
    const n = ap.fwd;
    const f = await this.#own();
    const b1 = new Batch(this.#exec, f)
      .addVeth({ name: n.veth, peerName: first.ifName, peerNetns: first.netns, ...mtuOpt, alias: this.alias(id, Role.FWD) })
      .addVxlan({
        name: n.vxlan,
        vni: n.vni,
        local: n.local,
        remote: n.remote,
        dstPort: n.port,
        ...mtuOpt,
        alias: this.alias(id, Role.VXLAN),
      });
    if (n.bridge !== undefined) {
      const bridgeLines: IpLine[] = [
        { what: `addBridge ${n.bridge}`, args: ["link", "add", "name", validateIfName(n.bridge), "type", "bridge", "forward_delay", "0"] },
        { what: `setMaster ${n.veth}`, args: ["link", "set", "dev", n.veth, "master", n.bridge] },
        { what: `setMaster ${n.vxlan}`, args: ["link", "set", "dev", n.vxlan, "master", n.bridge] },
      ];
      const b2 = new Batch(this.#exec, f).setAlias(n.bridge, this.alias(id, Role.BRIDGE)).setUp(n.bridge).setUp(n.veth).setUp(n.vxlan);
      await this.#exec.apply(f, [...b1.lines, ...bridgeLines, ...b2.lines]);
    } else {
      await this.#exec.apply(f, [...b1.lines, ...new Batch(this.#exec, f).setUp(n.veth).setUp(n.vxlan).lines]);
      const tc = [
        [n.veth, n.vxlan],
        [n.vxlan, n.veth],
      ]
        .map(
          ([from, to]) =>
            `qdisc add dev ${from} ingress\nfilter add dev ${from} ingress u32 match u32 0 0 action mirred egress redirect dev ${to}\n`,
        )
        .join("");
      const r = await this.#run(f.execArgv(["tc", "-batch", "-"]), { stdin: tc });
      if (r.code !== 0) {
        const c = classifyIpError(r.stderr, f);
        throw new StatusError(c.code, `kernel: tc redirect ${n.veth} <-> ${n.vxlan} in ${f}: ${c.reason}`);
      }
    }
    const bp = new Batch(this.#exec, first.netns).setAlias(first.ifName, this.alias(id, roleOf(first)));
    addConfig(bp, id, first);
    await bp.commit();
  }

  /**
   * True when every link of `prev` is still there with this connection's alias. Each namespace is asked for the
   * connection's own links by name (one `ip -batch` process, shared with the checks that arrive at the same time),
   * so the cost does not grow with the other connections' links in the forwarder's netns.
   */
  async #intact(id: string, prev: Applied): Promise<boolean> {
    try {
      const checks: Promise<boolean>[] = prev.pods.map(async (p) => {
        await p.netns.verify();
        const l = (await this.#named.submit(nsKey(p.netns), { ns: p.netns, names: [p.ifName] })).get(p.ifName);
        return l?.alias === this.alias(id, p.side === "client" ? Role.CLIENT : Role.ENDPOINT);
      });
      const fwd = prev.fwd;
      if (fwd) {
        checks.push(
          (async () => {
            const own = await this.#own();
            const prefix = this.connectionPrefix(id);
            const names = [fwd.veth, fwd.vxlan, ...(fwd.bridge === undefined ? [] : [fwd.bridge])];
            const found = await this.#named.submit(nsKey(own), { ns: own, names });
            const by = (n: string): LinkInfo | undefined => {
              const l = found.get(n);
              return l?.alias?.startsWith(prefix) ? l : undefined;
            };
            const vx = by(fwd.vxlan);
            return (
              by(fwd.veth) !== undefined &&
              (fwd.bridge === undefined || by(fwd.bridge) !== undefined) &&
              vx?.vxlan?.vni === fwd.vni &&
              vx.vxlan.remote === fwd.remote
            );
          })(),
        );
      }
      return (await Promise.all(checks)).every(Boolean);
    } catch (err) {
      this.#log.info({ err, connId: id }, "kernel xconnect: links of the connection are not intact, rebuilding");
      return false;
    }
  }

  /** The named links of one namespace for every caller of a group, read in one `ip -batch` process. */
  async #getNamed(items: ReadonlyArray<{ ns: Netns; names: readonly string[] }>): Promise<Map<string, LinkInfo>[]> {
    const first = items[0];
    if (!first) return [];
    const found = await getLinks(this.#exec, first.ns, [...new Set(items.flatMap((i) => i.names))]);
    return items.map(() => found);
  }

  async #update(spec: XconnectSpec, prev: Applied): Promise<void> {
    const work: Promise<void>[] = [];
    const mtuChanged = spec.mtu !== undefined && spec.mtu !== prev.mtu;
    for (const p of prev.pods) {
      const next = legConfig(spec.context, p.side, p.ifName);
      const b = new Batch(this.#exec, p.netns);
      const addrs = sameSet(p.config.addresses, next.addresses);
      const routes = new Map(next.routes.map((r) => [routeKey(r), r]));
      const oldRoutes = new Map(p.config.routes.map((r) => [routeKey(r), r]));
      const neigh = new Map(next.neighbors.map((n) => [neighborKey(n), n]));
      const oldNeigh = new Map(p.config.neighbors.map((n) => [neighborKey(n), n]));
      for (const [k, r] of oldRoutes) if (!routes.has(k)) b.delRoute(r);
      for (const [k, n] of oldNeigh) if (!neigh.has(k)) b.delNeighbor(n);
      for (const a of addrs.removed) b.delAddress(p.ifName, a);
      if (mtuChanged && spec.mtu !== undefined) b.setMtu(p.ifName, spec.mtu);
      // A MAC dropped from the context stays: the kernel has no "original" address to go back to.
      if (next.mac !== undefined && next.mac !== p.config.mac) b.setMac(p.ifName, next.mac);
      for (const a of addrs.added) b.addAddress(p.ifName, a, { replace: true });
      for (const [k, r] of routes) if (!oldRoutes.has(k)) b.addRoute(r, { replace: true });
      for (const [k, n] of neigh) if (!oldNeigh.has(k)) b.addNeighbor(n, { replace: true });
      p.config = next;
      if (b.size > 0) work.push(b.commit());
    }
    if (mtuChanged && spec.mtu !== undefined && prev.fwd) {
      work.push(new Batch(this.#exec, await this.#own()).setMtu(prev.fwd.veth, spec.mtu).setMtu(prev.fwd.vxlan, spec.mtu).commit());
    }
    await Promise.all(work);
    prev.mtu = spec.mtu ?? prev.mtu;
  }

  /**
   * Removes every link of the connection found by alias in the given namespaces, skipping namespaces that are
   * gone. The forwarder's own netns (if listed) is looked at first, then the pods in order; one end of a veth pair
   * is enough (the kernel deletes its peer), so once a veth is gone and the own netns is done the walk stops —
   * usually one listing and one deletion per Close. With `known` (what `program` built) each namespace is asked
   * only for the connection's own links by name, not listed whole. Returns the names removed.
   */
  async remove(connectionId: string, netnsUrls: readonly string[], known?: Applied): Promise<string[]> {
    const prefix = this.connectionPrefix(connectionId);
    const handles: Netns[] = [];
    for (const r of await Promise.allSettled([...new Set(netnsUrls)].map((u) => openNetns(u)))) {
      if (r.status === "fulfilled" && !handles.some((h) => h.sameAs(r.value))) handles.push(r.value);
    }
    const own = await this.#own();
    const ordered = [...handles.filter((h) => h.sameAs(own)), ...handles.filter((h) => !h.sameAs(own))];
    const removed: string[] = [];
    let vethGone = false;
    for (const ns of ordered) {
      if (vethGone && !ns.sameAs(own)) break;
      let found: LinkInfo[];
      try {
        const names = known && namesIn(known, ns, own);
        const mine = (links: Iterable<LinkInfo>) => [...links].filter((l) => l.alias?.startsWith(prefix) ?? false);
        found = names ? mine((await this.#named.submit(nsKey(ns), { ns, names })).values()) : [];
        // Not all where it was built (renamed, or an unknown connection): look at every link of the namespace.
        if (!names || found.length < names.length) found = mine(await this.#lists.submit(nsKey(ns), ns));
      } catch (err) {
        if (err instanceof StatusError && err.code === Code.NotFound) continue;
        throw err;
      }
      const links = found.filter((l) => {
        if (l.kind !== "veth") return true;
        if (vethGone) return false;
        vethGone = true;
        return true;
      });
      if (links.length === 0) continue;
      removed.push(...(await this.#deletes.submit(nsKey(ns), { ns, names: links.map((l) => l.name) })));
    }
    return removed;
  }

  /** All links of a namespace, one `ip` process shared by every Close that asked before it started. */
  async #listAll(ns: Netns, n: number): Promise<LinkInfo[][]> {
    const links = await listLinks(this.#exec, ns);
    return Array.from({ length: n }, () => links);
  }

  /** Deletes the links of several Closes in one batch; if one is already gone, falls back to one at a time. */
  async #deleteAll(items: ReadonlyArray<{ ns: Netns; names: string[] }>): Promise<string[][]> {
    const first = items[0];
    if (!first) return [];
    const b = new Batch(this.#exec, first.ns);
    for (const it of items) for (const name of it.names) b.deleteLink(name);
    try {
      await b.commit();
      return items.map((it) => it.names);
    } catch (err) {
      if (!(err instanceof StatusError && err.code === Code.NotFound)) throw err;
    }
    const out: string[][] = [];
    for (const it of items) {
      const done: string[] = [];
      for (const name of it.names) {
        try {
          await new Batch(this.#exec, it.ns).deleteLink(name).commit();
          done.push(name);
        } catch (err) {
          if (!(err instanceof StatusError && err.code === Code.NotFound)) throw err;
        }
      }
      out.push(done);
    }
    return out;
  }
}

function nsKey(ns: Netns): string {
  return `${ns.dev}:${ns.inode}`;
}

/** Configures a new pod interface: the context's MAC, or one stable for the connection and side (`stableMac`). */
function addConfig(b: Batch, connectionId: string, p: PodState): void {
  const { ifName: dev, config: cfg } = p;
  b.setMac(dev, cfg.mac ?? stableMac(connectionId, p.side));
  for (const a of cfg.addresses) b.addAddress(dev, a, { replace: true });
  b.setUp(dev);
  for (const r of cfg.routes) b.addRoute(r, { replace: true });
  for (const n of cfg.neighbors) b.addNeighbor(n, { replace: true });
}
