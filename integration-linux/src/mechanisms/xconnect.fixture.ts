/**
 * The fixture of the forwarder cross-connect tests in real namespaces: the elements of a forwarder and an endpoint
 * chained in one process, a minimal IPAM, requests, and the links an owner left behind.
 */

import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import {
  type Connection,
  ConnectionContextSchema,
  type NetworkServiceRequest,
  NetworkServiceRequestSchema,
} from "@nsm-ts/api/networkservice";
import {
  chain,
  clienturl,
  handler,
  mechanisms,
  mechanismtranslation,
  metadata,
  type NetworkServiceElement,
  type NetworkServiceHandler,
} from "@nsm-ts/sdk/networkservice";
import {
  Batch,
  createIpExecutor,
  createKernelForwarder,
  type KernelForwarder,
  kernel,
  listOwned,
  type Netns,
  ownerPrefix,
} from "@nsm-ts/sdk-linux";
import { KernelFixture, skipUnlessKernel } from "../kernel/fixture.js";

/** Runs `ip` for the tests. */
export const ip = createIpExecutor();

/** The addresses (and MACs) `ipam` gives a connection. */
export interface Addresses {
  src: string[];
  dst: string[];
  srcRoutes?: string[];
  /** ethernet_context src_mac / dst_mac. */
  macs?: [string, string];
}

/** A minimal IPAM: a fixed context per connection, changeable between requests. */
export function ipam(plan: (conn: Connection) => Addresses): NetworkServiceElement {
  return {
    name: "test-ipam",
    async request(_ctx, req, next) {
      const conn = req.connection;
      if (conn) {
        const a = plan(conn);
        const mtu = conn.context?.MTU ?? 0;
        conn.context = create(ConnectionContextSchema, {
          MTU: mtu,
          ipContext: { srcIpAddrs: a.src, dstIpAddrs: a.dst, srcRoutes: (a.srcRoutes ?? []).map((prefix) => ({ prefix })) },
          ...(a.macs ? { ethernetContext: { srcMac: a.macs[0], dstMac: a.macs[1] } } : {}),
        });
      }
      return next.request(_ctx, req);
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}

/** An endpoint's elements: metadata, the KERNEL server mechanism into `ns`, and `ipam(plan)`. */
export function endpoint(ns: Netns, plan: (conn: Connection) => Addresses): NetworkServiceElement[] {
  return [metadata.newServer(), mechanisms.newServer({ KERNEL: kernel.newServer({ netnsUrl: ns.path }) }), ipam(plan)];
}

/** A forwarder's elements, handing the connection to `nextHopUrl` through its client mechanisms. */
export function forwarderPart(fwd: KernelForwarder, nextHopUrl: string): NetworkServiceElement[] {
  return [
    metadata.newServer(),
    mechanisms.newServer(fwd.mechanisms),
    mechanismtranslation.newClient(),
    clienturl.newClient(nextHopUrl),
    ...fwd.clientMechanisms,
  ];
}

/** A first Request of connection `id` asking for a KERNEL interface `ifName` in `clientNs`. */
export function request(id: string, clientNs: Netns, ifName: string): NetworkServiceRequest {
  return create(NetworkServiceRequestSchema, {
    connection: { id, networkService: "svc", path: { index: 0, pathSegments: [{ name: "fwd", id }] } },
    mechanismPreferences: [mechanisms.kernel.mechanism({ netnsUrl: clientNs.path, ifName })],
  });
}

/** A refresh of `conn`. */
export function refreshOf(conn: Connection): NetworkServiceRequest {
  return create(NetworkServiceRequestSchema, { connection: conn });
}

/** The links of `owner` left in the namespaces, as `netns/link`. */
export async function owned(owner: string, ...nss: Netns[]): Promise<string[]> {
  const out: string[] = [];
  for (const ns of nss) for (const l of await listOwned(ip, ns, ownerPrefix(owner))) out.push(`${ns.name}/${l.name}`);
  return out;
}

/**
 * A local KERNEL ↔ KERNEL cross-connect: namespaces `a` (client), `e` (endpoint, serving 203.0.113.10 on lo
 * behind itself) and `f` (the forwarder's), a kernel forwarder of `owner` chained with the endpoint's elements
 * (`ep`), whose IPAM follows `plan`.
 */
export async function localMesh(
  fx: KernelFixture,
  owner: string,
  plan: () => Addresses,
): Promise<{ a: Netns; e: Netns; f: Netns; ep: NetworkServiceElement[]; h: NetworkServiceHandler }> {
  const a = await fx.netns("a");
  const e = await fx.netns("e");
  const f = await fx.netns("f");
  // The endpoint also serves an address behind itself, reached through a src_route via the dst address.
  await new Batch(ip, e).setUp("lo").addAddress("lo", "203.0.113.10/32").commit();
  const fwd = createKernelForwarder({ owner, forwarderNetnsUrl: f.path });
  const ep = endpoint(e, plan);
  const h = handler(chain(...forwarderPart(fwd, "unix:///tmp/nse.sock"), ...ep));
  return { a, e, f, ep, h };
}

/**
 * The hooks every cross-connect suite shares: skip without kernel privileges, a fresh KernelFixture and owner
 * name per test (handed to `set`), and the fixture's cleanup after each test.
 */
export function useKernelFixture(set: (fx: KernelFixture, owner: string) => void): void {
  let current: KernelFixture | undefined;
  before(async function () {
    await skipUnlessKernel(this);
  });
  beforeEach(() => {
    current = new KernelFixture();
    set(current, `fwd-${randomBytes(3).toString("hex")}`);
  });
  afterEach(async () => {
    await current?.cleanup();
  });
}

/** The underlay between two "nodes": a veth `under` from `f1` to `f2` with `cidr1` and `cidr2`, both up. */
export async function underlay(f1: Netns, f2: Netns, cidr1: string, cidr2: string): Promise<void> {
  await new Batch(ip, f1).addVeth({ name: "under", peerName: "under", peerNetns: f2 }).addAddress("under", cidr1).setUp("under").commit();
  await new Batch(ip, f2).addAddress("under", cidr2).setUp("under").commit();
}
