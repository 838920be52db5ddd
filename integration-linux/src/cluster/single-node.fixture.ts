/**
 * The single-node KERNEL mesh of the cluster tests, as mocha hooks: registry, nsmgr and forwarder inside a "node"
 * netns, pod netns A for the client and B for endpoints, sockets in one temp directory. `useSingleNode()` inside a
 * `describe` skips without root or netns support, builds the mesh before each test and removes everything after it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KernelFixture, skipUnlessKernel } from "../kernel/fixture.js";
import { freePort, type LogRecord, type Program } from "../programs/harness.js";
import { type LinkInfo, links, Processes, roleNamespaces } from "./cluster.js";

/** The network service the endpoints serve. */
export const SERVICE = "kernel-responder";
/** The client's interface name. */
export const IFNAME = "nsm-1";

/** The fields of a logged connection summary the tests read. */
export interface ConnSummary {
  id: string;
  networkServiceEndpointName: string;
  srcIpAddrs: string[];
  dstIpAddrs: string[];
}

/** The connection summary of a `connected` or `connection refreshed` record. */
export const connOf = (r: LogRecord): ConnSummary => r.connection as ConnSummary;

/** The mesh of the current test (valid between beforeEach and afterEach). */
export interface SingleNode {
  readonly fx: KernelFixture;
  readonly procs: Processes;
  readonly dir: string;
  /** Named netns of the node (registry, nsmgr, forwarder) and of pods A (client) and B (endpoints). */
  readonly ns: Readonly<Record<"node" | "a" | "b", string>>;
  /** The nsmgr's unix socket URL. */
  readonly nodeSocket: string;
  /** Starts cmd-forwarder (KERNEL) in the node netns; the mesh starts one, tests restart it. */
  startForwarder(vars?: Record<string, string>): Promise<Program>;
  /** Starts cmd-endpoint `name` for SERVICE in pod B and waits until it serves. */
  startEndpoint(name: string, vars?: Record<string, string>, ownPidNamespace?: boolean): Promise<Program>;
  /** Spawns cmd-nsc `nsc-1` in pod A requesting `kernel://SERVICE/IFNAME`. */
  startClient(vars?: Record<string, string>, ownPidNamespace?: boolean): Program;
  /** The link `name` (default IFNAME) in netns `where`. */
  linkIn(where: string, name?: string): Promise<LinkInfo | undefined>;
}

/** Registers the hooks of the single-node mesh in the enclosing `describe` and returns its handle. */
export function useSingleNode(): SingleNode {
  let fx: KernelFixture;
  let procs: Processes;
  let dir = "";
  const ns: Record<"node" | "a" | "b", string> = { node: "", a: "", b: "" };
  let nodeSocket = "";

  const startForwarder = (vars: Record<string, string> = {}): Promise<Program> =>
    procs.start(
      "cmd-forwarder",
      {
        NSM_NAME: "forwarder-1",
        NSM_CONNECT_TO: nodeSocket,
        NSM_LISTEN_ON: `unix://${join(dir, "forwarder.sock")}`,
        NSM_FORWARDER_MECHANISM: "KERNEL",
        ...vars,
      },
      "cmd-forwarder serving",
      "forwarder-1",
      ns.node,
    );

  before(async function () {
    await skipUnlessKernel(this);
  });

  beforeEach(async () => {
    fx = new KernelFixture();
    procs = new Processes();
    dir = mkdtempSync(join(tmpdir(), "nsm-cluster-"));
    Object.assign(ns, await roleNamespaces(fx, ["node", "a", "b"] as const));
    nodeSocket = `unix://${join(dir, "nsm.io.sock")}`;
    const registryUrl = `tcp://127.0.0.1:${await freePort()}`;
    // The registry, nsmgr and forwarder share the node netns; its loopback carries their tcp.
    await Promise.all([
      procs.start("cmd-registry", { NSM_NAME: "registry", NSM_LISTEN_ON: registryUrl }, "cmd-registry serving", "registry", ns.node),
      procs.start(
        "cmd-nsmgr",
        {
          NSM_NAME: "nsmgr-1",
          NODE_NAME: "node-1",
          NSM_LISTEN_ON: `${nodeSocket},tcp://127.0.0.1:${await freePort()}`,
          NSM_REGISTRY_URL: registryUrl,
        },
        "cmd-nsmgr serving",
        "nsmgr-1",
        ns.node,
      ),
      startForwarder(),
    ]);
  });

  afterEach(async () => {
    await procs?.killAll();
    await fx?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  return {
    get fx() {
      return fx;
    },
    get procs() {
      return procs;
    },
    get dir() {
      return dir;
    },
    ns,
    get nodeSocket() {
      return nodeSocket;
    },
    startForwarder,
    startEndpoint: (name, vars = {}, ownPidNamespace = false) =>
      procs.start(
        "cmd-endpoint",
        {
          NSM_NAME: name,
          NSM_CONNECT_TO: nodeSocket,
          NSM_LISTEN_ON: `unix://${join(dir, `${name}.sock`)}`,
          NSM_SERVICE_NAMES: SERVICE,
          NSM_CIDR_PREFIX: "169.254.70.0/24",
          ...vars,
        },
        "cmd-endpoint serving",
        name,
        ns.b,
        30_000,
        { ownPidNamespace },
      ),
    startClient: (vars = {}, ownPidNamespace = false) =>
      procs.spawn(
        "cmd-nsc",
        {
          NSM_NAME: "nsc-1",
          NSM_CONNECT_TO: nodeSocket,
          NSM_NETWORK_SERVICES: `kernel://${SERVICE}/${IFNAME}`,
          NSM_REQUEST_TIMEOUT: "10s",
          ...vars,
        },
        "nsc-1",
        ns.a,
        { ownPidNamespace },
      ),
    linkIn: async (where, name = IFNAME) => (await links(where)).find((l) => l.ifname === name),
  };
}
