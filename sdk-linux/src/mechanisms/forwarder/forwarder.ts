/**
 * The kernel forwarder's mechanism elements. Server side (in the forwarder's `mechanisms` dispatch, keyed by the
 * incoming mechanism type): `KERNEL` takes the client pod's netns URL and interface name, `VXLAN` (a remote
 * forwarder asking) fills `dst_ip` with this forwarder's tunnel address and allocates the VNI. Client side
 * (after `mechanismtranslation`): offers KERNEL to a `unix://` next hop and VXLAN (`src_ip` = tunnel address)
 * to a `tcp://` one, and records the mechanism the next hop chose. Once the next hop answered, the server
 * element builds the cross-connect (see dataplane.ts), applies the ConnectionContext, and writes the path-segment
 * metrics `server_interface`/`client_interface`. State lives in server metadata; Close removes everything by alias.
 */

import { isIP } from "node:net";
import { clone, create } from "@bufbuild/protobuf";
import { CommonParam, KernelParam, MechanismClass, MechanismType, MetricsKey, VxlanParam } from "@nsm-ts/api/constants";
import {
  type Connection,
  ConnectionContextSchema,
  type Mechanism,
  MechanismSchema,
  type NetworkServiceRequest,
} from "@nsm-ts/api/networkservice";
import { MetaKey } from "@nsm-ts/base/context";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { generateLinuxInterfaceName } from "@nsm-ts/base/nanoid";
import { Code, fail, toStatusError } from "@nsm-ts/base/status";
import { clienturl, connectionOf, ipam, mechanisms, type NetworkServiceElement } from "@nsm-ts/sdk/networkservice";
import type { Enforcer } from "../../enforcement/enforcer.js";
import { createIpExecutor, type IpExecutorOptions } from "../../executor.js";
import { validateIfName } from "../../names.js";
import { currentNetns, type Netns, openNetns } from "../../netns.js";
import { listLinks } from "../../ops/read.js";
import { vxlanMtu } from "../../validate.js";
import { allocateVni, DEFAULT_VXLAN_PORT, vniOf, mechanism as vxlanMechanism } from "../vxlan/vni.js";
import { KernelDataplane } from "./dataplane.js";
import type { Applied, Leg, RemoteJoin } from "./xconnect.js";

/** Options of `createKernelForwarder`. */
export interface KernelForwarderOptions {
  /** Owner written into every alias (the forwarder's name, NSM_NAME); a restart with the same name finds its leftovers. */
  owner: string;
  /** This node's tunnel address (NSM_TUNNEL_IP); without it VXLAN is neither offered nor accepted. */
  tunnelIp?: string;
  /** UDP port of VXLAN devices when the mechanism names none; default 4789. */
  vxlanPort?: number;
  /** MTU of the underlay; default the MTU of the link holding `tunnelIp` in the forwarder's netns (1500 if none). */
  underlayMtu?: number;
  /** The forwarder's own netns, where VXLAN devices and bridges live; default this process's netns. */
  forwarderNetnsUrl?: string;
  /** How a VXLAN leg is joined to its veth in the forwarder's netns; default `bridge` (see README). */
  remoteJoin?: RemoteJoin;
  /** How `ip` is run (batch mode, timeouts, log). */
  ip?: IpExecutorOptions;
  /** Logger for cleanup anomalies; default silent (per-call logs go to `ctx.log`). */
  log?: Logger;
  /**
   * Enforces the security groups, route table and policy routes of connections whose context names a port
   * (`extra_context["nsmts.resources/port"]`) on their client interface (see `../../enforcement`).
   */
  enforcer?: Enforcer;
}

/** The pieces a forwarder chain plugs in (`createForwarder({ mechanisms, clientMechanisms })`). */
export interface KernelForwarder {
  /** Server-side elements by incoming mechanism type: `KERNEL`, and `VXLAN` when a tunnel IP is set. */
  readonly mechanisms: mechanisms.MechanismElements;
  /** Client-side elements (one) offering KERNEL/VXLAN to the next hop; place after mechanismtranslation. */
  readonly clientMechanisms: NetworkServiceElement[];
  /** The kernel programming underneath (for tools and tests). */
  readonly dataplane: KernelDataplane;
  /** The VNIs currently in use by this forwarder's connections. */
  readonly vnis: ReadonlySet<number>;
  /** Ids of the connections whose interfaces are programmed now (for the data-plane interfaces gauge). */
  readonly xconnects: ReadonlySet<string>;
}

interface XState {
  server?: Leg;
  clientMechanism?: Mechanism;
  applied?: Applied;
  /** VNI this forwarder holds for the connection (allocated or learned). */
  vni?: number;
  /** Name generated for a KERNEL mechanism that came without one. */
  generatedName?: string;
  /** The client interface the enforcer holds rules for. */
  enforced?: { netnsUrl: string; ifName: string };
}

const stateKey = new MetaKey<XState>("sdk-linux.kernel-forwarder");

const ownProcUrl = /^(?:file:\/\/)?\/proc\/(?:self|thread-self)\//;

function kernelLeg(m: Mechanism, where: string): Extract<Leg, { type: "KERNEL" }> {
  const url = mechanisms.kernel.netnsUrlOf(m);
  if (url === "") fail(Code.InvalidArgument, `kernel xconnect: ${where} KERNEL mechanism has no ${KernelParam.NETNS_URL}`);
  if (ownProcUrl.test(url)) {
    fail(
      Code.InvalidArgument,
      `kernel xconnect: ${where} ${KernelParam.NETNS_URL} ${url} names the sender's own netns, which only fd passing can carry; send inode://<dev>/<ino> or file:///proc/<pid>/ns/net`,
    );
  }
  // inode:// URLs are resolved by openNetns through /proc (the forwarder runs with hostPID), no fd passing needed.
  const ifName = mechanisms.kernel.interfaceNameOf(m);
  if (ifName === "")
    fail(Code.InvalidArgument, `kernel xconnect: ${where} KERNEL mechanism has no interface ${KernelParam.INTERFACE_NAME}`);
  validateIfName(ifName, `${where} interface name`);
  return { type: "KERNEL", netnsUrl: url, ifName };
}

function port(m: Mechanism, dflt: number): number {
  const s = m.parameters[VxlanParam.DST_PORT] ?? "";
  const n = /^\d+$/.test(s) ? Number(s) : 0;
  return n >= 1 && n <= 65535 ? n : dflt;
}

function setMetric(conn: Connection, key: string, value: string): void {
  const seg = conn.path?.pathSegments[conn.path.index];
  if (seg) seg.metrics[key] = value;
}

function metricOf(leg: Leg, applied: Applied): string {
  return leg.type === "KERNEL" ? `${MechanismType.KERNEL}/${leg.ifName}` : `${MechanismType.VXLAN}/${applied.fwd?.vxlan ?? ""}`;
}

function clampMtu(conn: Connection, mtu: number): void {
  conn.context ??= create(ConnectionContextSchema);
  if (conn.context.MTU === 0 || conn.context.MTU > mtu) conn.context.MTU = mtu;
}

/**
 * Attaches the connection to the enforcer when its context names a port or has policy routes, detaches it when
 * both went away, so the client interface carries its rules from the first Request on.
 */
async function enforce(enforcer: Enforcer, signal: AbortSignal, id: string, leg: Leg & { type: "KERNEL" }, out: Connection, st: XState) {
  const portId = out.context?.extraContext[ipam.resourceipam.PORT_CONTEXT_KEY] ?? "";
  const ip = out.context?.ipContext;
  if (portId === "" && (ip?.policies.length ?? 0) === 0) {
    if (st.enforced !== undefined) await enforcer.detach(id, st.enforced, signal);
    st.enforced = undefined;
    return;
  }
  st.enforced = { netnsUrl: leg.netnsUrl, ifName: leg.ifName };
  await enforcer.attach(
    { connectionId: id, netnsUrl: leg.netnsUrl, ifName: leg.ifName, portId, peer: ip?.dstIpAddrs ?? [], policies: ip?.policies ?? [] },
    signal,
  );
}

/** Builds the kernel forwarder's mechanism elements (see the header comment). */
export function createKernelForwarder(opts: KernelForwarderOptions): KernelForwarder {
  const log = opts.log ?? silentLogger;
  const exec = createIpExecutor(opts.ip ?? {});
  let ownP: Promise<Netns> | undefined;
  const own = (): Promise<Netns> => {
    ownP ??= opts.forwarderNetnsUrl ? openNetns(opts.forwarderNetnsUrl) : currentNetns();
    ownP.catch(() => {
      ownP = undefined;
    });
    return ownP;
  };
  const dp = new KernelDataplane(exec, opts.owner, own, log, opts.remoteJoin ?? "bridge");
  const vnis = new Set<number>();
  const xconnects = new Set<string>();
  const defaultPort = opts.vxlanPort ?? DEFAULT_VXLAN_PORT;
  const tunnelIp = opts.tunnelIp;
  if (tunnelIp !== undefined && isIP(tunnelIp) === 0)
    fail(Code.InvalidArgument, `kernel forwarder: tunnel IP ${JSON.stringify(tunnelIp)} is not an IP address`);

  let mtuP: Promise<number> | undefined;
  const tunnelMtu = (): Promise<number> => {
    const ip = tunnelIp ?? fail(Code.FailedPrecondition, "kernel forwarder: VXLAN needs a tunnel IP (NSM_TUNNEL_IP)");
    mtuP ??= (async () => {
      let underlay = opts.underlayMtu;
      if (underlay === undefined) {
        const links = await listLinks(exec, await own());
        underlay = links.find((l) => l.addresses.some((a) => a.split("/")[0] === ip))?.mtu ?? 1500;
      }
      return vxlanMtu(underlay, isIP(ip) === 6 ? 6 : 4);
    })();
    mtuP.catch(() => {
      mtuP = undefined;
    });
    return mtuP;
  };

  const releaseVni = (st: XState | undefined): void => {
    if (st?.vni !== undefined) vnis.delete(st.vni);
    if (st) st.vni = undefined;
  };

  /** Parses the mechanism the next hop chose into the endpoint-side leg. */
  const clientLeg = (m: Mechanism | undefined): Leg => {
    if (m?.type === MechanismType.KERNEL) return kernelLeg(m, "endpoint-side");
    if (m?.type === MechanismType.VXLAN) {
      const vni = vniOf(m);
      const remote = m.parameters[VxlanParam.DST_IP] ?? "";
      const local = m.parameters[VxlanParam.SRC_IP] || tunnelIp || "";
      if (vni === 0 || isIP(remote) === 0 || isIP(local) === 0)
        fail(Code.InvalidArgument, "kernel xconnect: the next hop's VXLAN mechanism lacks vni, src_ip or dst_ip");
      return { type: "VXLAN", vni, local, remote, port: port(m, defaultPort) };
    }
    return fail(
      Code.InvalidArgument,
      `kernel xconnect: the next hop chose mechanism "${m?.type ?? ""}", which this forwarder cannot connect`,
    );
  };

  const server = (type: "KERNEL" | "VXLAN"): NetworkServiceElement => ({
    name: `kernel-xconnect-${type.toLowerCase()}`,
    async request(ctx, req, next) {
      const conn = connectionOf(req);
      const id = conn.id;
      const m = conn.mechanism ?? fail(Code.InvalidArgument, "kernel xconnect: connection.mechanism is not set");
      const st = ctx.metadata.server.getOrSet(stateKey, (): XState => ({}));
      const first = st.applied === undefined;
      let leg: Leg;
      let mtu: number | undefined;
      if (type === "KERNEL") {
        if (mechanisms.kernel.interfaceNameOf(m) === "") {
          st.generatedName ??= generateLinuxInterfaceName(conn.networkService);
          m.parameters[KernelParam.INTERFACE_NAME] = st.generatedName;
        }
        leg = kernelLeg(m, "client-side");
        // The pod's ip process starts while the Request goes to the endpoint and back (persistent executor).
        if (first)
          openNetns(leg.netnsUrl).then(
            (ns) => exec.prepare?.(ns),
            () => undefined,
          );
      } else {
        const local = tunnelIp ?? fail(Code.FailedPrecondition, "kernel xconnect: VXLAN needs a tunnel IP (NSM_TUNNEL_IP)");
        const remote = m.parameters[VxlanParam.SRC_IP] ?? "";
        if (isIP(remote) === 0 || isIP(remote) !== isIP(local))
          fail(Code.InvalidArgument, `kernel xconnect: VXLAN src_ip ${JSON.stringify(remote)} is not an address of the tunnel IP's family`);
        m.parameters[VxlanParam.DST_IP] = local;
        let vni = vniOf(m) || st.vni || 0;
        if (vni === 0) vni = allocateVni(m, vnis);
        if (st.vni !== vni) {
          releaseVni(st);
          vnis.add(vni);
          st.vni = vni;
        }
        m.parameters[VxlanParam.VNI] = String(vni);
        mtu = await tunnelMtu();
        m.parameters[CommonParam.MTU] = String(mtu);
        clampMtu(conn, mtu);
        leg = { type: "VXLAN", vni, local, remote, port: port(m, defaultPort) };
      }
      st.server = leg;
      let out: Connection;
      try {
        out = await next.request(ctx, req);
      } catch (err) {
        if (first) releaseVni(st);
        throw err;
      }
      try {
        const cl = clientLeg(st.clientMechanism);
        if (cl.type === "VXLAN") {
          mtu = Math.min(mtu ?? Number.MAX_SAFE_INTEGER, await tunnelMtu());
          if (st.vni !== cl.vni) {
            releaseVni(st);
            vnis.add(cl.vni);
            st.vni = cl.vni;
          }
        }
        if (mtu !== undefined) clampMtu(out, mtu);
        const ctxMtu = out.context?.MTU || undefined;
        st.applied = await dp.program({ connectionId: id, server: leg, client: cl, context: out.context, mtu: ctxMtu }, st.applied);
        xconnects.add(id);
        if (opts.enforcer !== undefined && leg.type === "KERNEL") await enforce(opts.enforcer, ctx.signal, id, leg, out, st);
        setMetric(out, MetricsKey.SERVER_INTERFACE, metricOf(leg, st.applied));
        setMetric(out, MetricsKey.CLIENT_INTERFACE, metricOf(cl, st.applied));
        return out;
      } catch (err) {
        const e = toStatusError(err, "kernel xconnect");
        ctx.log.warn({ err: e, connId: id }, "kernel xconnect: programming the data plane failed");
        if (first) {
          // The next hop is connected but our part is not: undo it so nothing is left half-built.
          await next
            .close(ctx, out)
            .catch((ce: unknown) => ctx.log.warn({ err: ce, connId: id }, "kernel xconnect: closing the next hop after a failure failed"));
          releaseVni(st);
          if (st.applied !== undefined) {
            // Programmed, but enforcing failed: an interface without its rules must not stay.
            await dp
              .remove(id, st.applied.netnsUrls)
              .catch((re: unknown) => ctx.log.warn({ err: re, connId: id }, "kernel xconnect: removing the links after a failure failed"));
          }
          st.applied = undefined;
          xconnects.delete(id);
        }
        throw e;
      }
    },
    async close(ctx, conn, next) {
      const st = ctx.metadata.server.get(stateKey);
      let failure: unknown;
      try {
        await next.close(ctx, conn);
      } catch (err) {
        failure = err;
      }
      try {
        if (opts.enforcer !== undefined) {
          const m = conn.mechanism;
          // Without state (a restarted forwarder) the rules may be there all the same: remove by derived names.
          const where =
            st !== undefined
              ? st.enforced
              : mechanisms.kernel.isKernel(m) && mechanisms.kernel.interfaceNameOf(m) !== ""
                ? { netnsUrl: mechanisms.kernel.netnsUrlOf(m), ifName: mechanisms.kernel.interfaceNameOf(m) }
                : undefined;
          if (where !== undefined) await opts.enforcer.detach(conn.id, where);
        }
      } catch (err) {
        failure ??= err;
      }
      try {
        // Without state (a restarted forwarder) the own netns may hold VXLAN leftovers, and the pod netns is
        // known only from the incoming mechanism.
        const urls =
          st?.applied?.netnsUrls ??
          [(await own()).url, mechanisms.kernel.isKernel(conn.mechanism) ? mechanisms.kernel.netnsUrlOf(conn.mechanism) : ""].filter(
            (u) => u !== "" && !ownProcUrl.test(u),
          );
        await dp.remove(conn.id, urls, st?.applied);
      } catch (err) {
        failure ??= err;
      } finally {
        releaseVni(st);
        xconnects.delete(conn.id);
        ctx.metadata.server.delete(stateKey);
      }
      if (failure !== undefined) throw failure;
    },
  });

  const client: NetworkServiceElement = {
    name: "kernel-xconnect-client",
    async request(ctx, req: NetworkServiceRequest, next) {
      const conn = connectionOf(req);
      const st = ctx.metadata.server.getOrSet(stateKey, (): XState => ({}));
      if (!conn.mechanism) {
        const proto = clienturl.clientUrlOf(ctx)?.protocol;
        if (proto !== "tcp:")
          mechanisms.prefer(req, create(MechanismSchema, { cls: MechanismClass.LOCAL, type: MechanismType.KERNEL, parameters: {} }));
        if (proto !== "unix:" && tunnelIp !== undefined) {
          mechanisms.prefer(req, vxlanMechanism(tunnelIp));
          if (proto === "tcp:") clampMtu(conn, await tunnelMtu());
        }
      }
      const out = await next.request(ctx, req);
      st.clientMechanism = out.mechanism ? clone(MechanismSchema, out.mechanism) : undefined;
      return out;
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };

  const elements: Record<string, NetworkServiceElement> = { [MechanismType.KERNEL]: server("KERNEL") };
  if (tunnelIp !== undefined) elements[MechanismType.VXLAN] = server("VXLAN");
  return { mechanisms: elements, clientMechanisms: [client], dataplane: dp, vnis, xconnects };
}
