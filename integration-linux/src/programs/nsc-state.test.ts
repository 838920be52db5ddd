/**
 * `cmd-nsc list connections` against a running cmd-nsc (real processes, NOOP data plane): the connection shows
 * CONNECTED, then HEALING with the attempt count while its endpoint is down (SIGKILL), then CONNECTED again once
 * an endpoint under the same name is back; `-o json` carries the heal state, and SIGTERM removes the client's file.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { type Program, type ProgramSet, repoRoot, startEndpoint, startNode, startRegistry, useProgramSet } from "./harness.js";

const SERVICE = "icmp-responder";

/** Runs `cmd-nsc list connections --state-dir <dir> [args]`; resolves with its stdout (exit 0 checked). */
async function listConnections(stateDir: string, ...args: string[]): Promise<string> {
  const bin = join(repoRoot, "cmd-nsc", "bin", "cmd-nsc.js");
  const child = spawn(process.execPath, [bin, "list", "connections", "--state-dir", stateDir, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NSM_LOG_LEVEL: "ERROR" },
  });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
  child.stderr.setEncoding("utf8").on("data", (s: string) => (err += s));
  const [code] = (await once(child, "exit")) as [number | null];
  expect(code, err).to.equal(0);
  return out;
}

interface JsonItem {
  nsc: string;
  connection: { id: string; networkServiceEndpointName: string };
  heal: { state: string; attempt: number; trigger?: string; lastError?: string };
}

describe("programs: cmd-nsc list connections shows the client's heal state", function () {
  this.timeout(90_000);
  let set: ProgramSet;
  useProgramSet((s) => {
    set = s;
  });

  it("CONNECTED, HEALING (attempt n) while the endpoint is down, CONNECTED after it comes back", async () => {
    const stateDir = join(set.dir, "state");
    const { url } = await startRegistry(set);
    const node = await startNode(set, 1, url);
    const nse1 = await startEndpoint(set, "nse-1", node.socket, SERVICE);
    const nsc: Program = set.spawn(
      "cmd-nsc",
      { NSM_NAME: "nsc-1", NSM_CONNECT_TO: node.socket, NSM_NETWORK_SERVICES: `noop://${SERVICE}`, NSM_STATE_DIR: stateDir },
      "nsc-1",
    );
    const connected = await nsc.waitFor("connected", () => true, 30_000);
    const connId = connected.connId as string;

    const before = await listConnections(stateDir);
    expect(before, before).to.match(/^NSC\s+ID\s+SERVICE\s+ENDPOINT\s+STATE\s+SRC\s+DST\n/);
    expect(before, before).to.match(new RegExp(`\\nnsc-1\\s+${connId}\\s+${SERVICE}\\s+nse-1\\s+CONNECTED\\s`));

    await nse1.stop("SIGKILL");
    // The state file is written before heal logs the failure, so from here on it shows attempt 2 or later.
    await nsc.waitFor("heal: heal attempt 2 failed", () => true, 30_000);
    const healing = await listConnections(stateDir);
    const m = /HEALING \(attempt (\d+)(, reselect)?\)/.exec(healing);
    expect(m, healing).to.not.equal(null);
    expect(Number(m?.[1]), healing).to.be.at.least(2);
    expect(healing).to.include(connId);
    const json = JSON.parse(await listConnections(stateDir, "-o", "json")) as { items: JsonItem[] };
    expect(json.items).to.have.length(1);
    expect(json.items[0]).to.deep.include({ nsc: "nsc-1" });
    expect(json.items[0]?.connection.id).to.equal(connId);
    expect(json.items[0]?.heal).to.deep.include({ state: "HEALING" });
    expect(json.items[0]?.heal.attempt).to.be.at.least(2);
    expect(json.items[0]?.heal.lastError, "the failed attempt's error").to.be.a("string");
    process.stdout.write(`      while the endpoint is down: ${healing.trim().split("\n")[1]?.replace(/\s+/g, " ")}\n`);

    const healedBefore = nsc.records.filter((r) => r.msg === "heal: healed").length;
    await startEndpoint(set, "nse-1", node.socket, SERVICE);
    await nsc.waitFor("heal: healed", () => nsc.records.filter((r) => r.msg === "heal: healed").length > healedBefore, 30_000);
    const after = await listConnections(stateDir);
    expect(after, after).to.match(new RegExp(`\\nnsc-1\\s+${connId}\\s+${SERVICE}\\s+nse-1\\s+CONNECTED\\s`));
    expect(after).to.not.include("HEALING");

    const { code } = await nsc.stop("SIGTERM");
    expect(code, nsc.output()).to.equal(0);
    expect(existsSync(join(stateDir, "nsc-1.json")), "the state file is removed on SIGTERM").to.equal(false);
    expect(await listConnections(stateDir)).to.equal("No resources found.\n");
  });
});
