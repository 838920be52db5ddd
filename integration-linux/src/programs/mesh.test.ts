/**
 * The real programs as processes with the NOOP data plane: a local connection (one node: client, nsmgr,
 * forwarder, endpoint) and a remote one (two nsmgr+forwarder pairs sharing a registry, client on node 1,
 * endpoint on node 2) are requested, refreshed and closed; the operator CLI lists what the registry holds, and
 * endpoints and forwarders unregister on SIGTERM.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { expect } from "chai";
import {
  type LogRecord,
  type Program,
  type ProgramSet,
  repoRoot,
  startEndpoint,
  startNode,
  startRegistry,
  useProgramSet,
} from "./harness.js";

interface Segment {
  name: string;
  id: string;
}
interface Summary {
  id: string;
  networkService: string;
  networkServiceEndpointName: string;
  state: string;
  mechanism: string;
  srcIpAddrs: string[];
  dstIpAddrs: string[];
  path: Segment[];
}

const SERVICE = "icmp-responder";

/** Runs `cmd-nsc list nse|ns -o json` against the registry and returns the names. */
async function listNames(kind: "ns" | "nse", registryUrl: string): Promise<string[]> {
  const bin = join(repoRoot, "cmd-nsc", "bin", "cmd-nsc.js");
  const child = spawn(process.execPath, [bin, "list", kind, "--registry", registryUrl, "-o", "json"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NSM_LOG_LEVEL: "ERROR" },
  });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
  child.stderr.setEncoding("utf8").on("data", (s: string) => (err += s));
  const [code] = (await once(child, "exit")) as [number | null];
  expect(code, err).to.equal(0);
  const parsed = JSON.parse(out) as { items: { name: string }[] };
  return parsed.items.map((i) => i.name).sort();
}

/** A client that refreshes every few seconds: short tokens, and a request timeout well inside them. */
function startClient(set: ProgramSet, socket: string): Program {
  return set.spawn(
    "cmd-nsc",
    {
      NSM_NAME: "nsc-1",
      NSM_CONNECT_TO: socket,
      NSM_NETWORK_SERVICES: `noop://${SERVICE}?app=test`,
      NSM_MAX_TOKEN_LIFETIME: "10s",
      NSM_REQUEST_TIMEOUT: "2s",
    },
    "nsc-1",
  );
}

function inCidr(addr: string): boolean {
  return /^169\.254\.10\.\d+\/32$/.test(addr);
}

/** Request → refresh (seen by the endpoint) → SIGTERM on the client closes the connection at the endpoint. */
async function requestRefreshClose(nsc: Program, nse: Program, expectedPath: string[]): Promise<void> {
  const connected = await nsc.waitFor("connected");
  const c = connected.connection as Summary;
  expect(c.path.map((s) => s.name)).to.deep.equal(expectedPath);
  expect(c).to.include({ networkService: SERVICE, networkServiceEndpointName: expectedPath.at(-1), state: "UP", mechanism: "NOOP" });
  expect(c.srcIpAddrs).to.have.length(1);
  expect(c.dstIpAddrs).to.have.length(1);
  expect(inCidr(c.srcIpAddrs[0] ?? ""), c.srcIpAddrs[0]).to.equal(true);
  expect(inCidr(c.dstIpAddrs[0] ?? ""), c.dstIpAddrs[0]).to.equal(true);
  expect(new Set(c.path.map((s) => s.id)).size, "one id per segment").to.equal(expectedPath.length);

  const nseId = c.path.at(-1)?.id as string;
  const byId = (r: LogRecord): boolean => r.connId === nseId;
  const established = await nse.waitFor("connection established", byId);
  expect(established.src).to.deep.equal(c.srcIpAddrs);

  // The client refreshes on its own well before its 10 s tokens run out, and the refresh travels to the endpoint.
  const refreshed = await nsc.waitFor("connection refreshed", (r) => (r.connection as Summary).id === c.id, 10_000);
  expect((refreshed.connection as Summary).path.map((s) => s.name)).to.deep.equal(expectedPath);
  await nse.waitFor("connection refreshed", byId, 5_000);

  expect(await nsc.stop("SIGTERM")).to.deep.equal({ code: 0, signal: null });
  await nse.waitFor("connection closed", byId, 5_000);
  expect(nsc.records.some((r) => r.msg === "connection closed" && r.connId === c.id)).to.equal(true);
}

describe("programs as processes (NOOP data plane)", function () {
  this.timeout(90_000);
  let set: ProgramSet;
  useProgramSet((s) => {
    set = s;
  });

  it("local: request, refresh and close through nsmgr, forwarder and endpoint (4 segments)", async () => {
    const { url } = await startRegistry(set);
    const node = await startNode(set, 1, url);
    const nse = await startEndpoint(set, "nse-1", node.socket, SERVICE);
    await requestRefreshClose(startClient(set, node.socket), nse, ["nsc-1", "nsmgr-1", "forwarder-1", "nse-1"]);
  });

  it("remote: client on node 1, endpoint on node 2 (6 segments)", async () => {
    const { url } = await startRegistry(set);
    const node1 = await startNode(set, 1, url);
    const node2 = await startNode(set, 2, url);
    const nse = await startEndpoint(set, "nse-2", node2.socket, SERVICE);
    await requestRefreshClose(startClient(set, node1.socket), nse, ["nsc-1", "nsmgr-1", "forwarder-1", "nsmgr-2", "forwarder-2", "nse-2"]);
  });

  it("heal: SIGKILL of the endpoint moves the connection to another endpoint of the service", async () => {
    const { url } = await startRegistry(set);
    const node = await startNode(set, 1, url);
    const first = await startEndpoint(set, "nse-a", node.socket, SERVICE);
    const nsc = set.spawn(
      "cmd-nsc",
      { NSM_NAME: "nsc-1", NSM_CONNECT_TO: node.socket, NSM_NETWORK_SERVICES: `noop://${SERVICE}` },
      "nsc-1",
    );
    const c = (await nsc.waitFor("connected")).connection as Summary;
    expect(c.networkServiceEndpointName).to.equal("nse-a");
    const second = await startEndpoint(set, "nse-b", node.socket, SERVICE);

    await first.stop("SIGKILL");
    const healed = await nsc.waitFor(
      "connection refreshed",
      (r) => (r.connection as Summary).networkServiceEndpointName === "nse-b",
      20_000,
    );
    const h = healed.connection as Summary;
    expect(h.id, "the client keeps its connection id").to.equal(c.id);
    expect(h.path.map((s) => s.name)).to.deep.equal(["nsc-1", "nsmgr-1", "forwarder-1", "nse-b"]);
    expect(h.state).to.equal("UP");
    await second.waitFor("connection established", (r) => r.connId === h.path[3]?.id);
  });

  it("NSM_IDLE_TIMEOUT: an endpoint without connections unregisters and exits 0", async () => {
    const { url } = await startRegistry(set);
    const node = await startNode(set, 1, url);
    const nse = await startEndpoint(set, "nse-idle", node.socket, SERVICE, { NSM_IDLE_TIMEOUT: "1s" });
    await nse.waitFor("no connections for NSM_IDLE_TIMEOUT; exiting", () => true, 5_000);
    expect(await nse.exited).to.deep.equal({ code: 0, signal: null });
    expect(nse.records.some((r) => r.msg === "unregistered")).to.equal(true);
  });

  it("registrations: the CLI lists endpoints, forwarders and services; SIGTERM unregisters", async () => {
    const { url } = await startRegistry(set);
    const node = await startNode(set, 1, url);
    const nse = await startEndpoint(set, "nse-1", node.socket, SERVICE);
    expect(await listNames("nse", url)).to.deep.equal(["forwarder-1", "nse-1"]);
    expect(await listNames("ns", url)).to.include(SERVICE);

    expect(await nse.stop("SIGTERM")).to.deep.equal({ code: 0, signal: null });
    await nse.waitFor("unregistered");
    expect(await listNames("nse", url)).to.deep.equal(["forwarder-1"]);
    expect(await node.forwarder.stop("SIGTERM")).to.deep.equal({ code: 0, signal: null });
    expect(await listNames("nse", url)).to.deep.equal([]);
  });
});
