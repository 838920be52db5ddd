import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { NetworkManager, PortManager, SubnetManager } from "@nsm-ts/api/resources";
import { type Channel, createClient, dial } from "@nsm-ts/base/grpc";
import { devIdentity } from "@nsm-ts/base/identity";
import { createTokenGenerator } from "@nsm-ts/base/token";
import { client, mechanisms, type NsmClient } from "@nsm-ts/sdk/networkservice";
import { freePort } from "@nsm-ts/testing/net";
import { expect } from "chai";

const binOf = (program: string): string => fileURLToPath(new URL(`../../${program}/bin/${program}.js`, import.meta.url));

interface Proc {
  child: ChildProcess;
  records: Array<{ msg: string; [k: string]: unknown }>;
  output: string;
}

/** Spawns a program with only `vars` among the NSM_ variables and resolves once it logs `readyMsg`. */
async function start(program: string, vars: Record<string, string>, readyMsg: string, procs: Proc[]): Promise<Proc> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("NSM_")) delete env[k];
  const child = spawn(process.execPath, [binOf(program)], {
    env: { ...env, NSM_LOG_LEVEL: "INFO", ...vars },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const p: Proc = { child, records: [], output: "" };
  procs.push(p);
  return new Promise((resolve, reject) => {
    let buf = "";
    child.stderr?.setEncoding("utf8").on("data", (s: string) => (p.output += s));
    child.stdout?.setEncoding("utf8").on("data", (s: string) => {
      buf += s;
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        p.output += `${line}\n`;
        try {
          const r = JSON.parse(line) as Proc["records"][number];
          p.records.push(r);
          if (r.msg === readyMsg) resolve(p);
        } catch {
          // not a log record
        }
      }
    });
    child.once("exit", (code, signal) =>
      reject(new Error(`${program} exited (${signal ?? code}) before "${readyMsg}":\n${p.output.slice(-3000)}`)),
    );
  });
}

async function kill(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = once(p.child, "exit");
  p.child.kill("SIGKILL");
  await exited;
}

describe("cmd-endpoint with NSM_IPAM_URL + NSM_SUBNET (processes: cmd-registry serves the resource manager)", function () {
  this.timeout(60_000);
  const procs: Proc[] = [];
  let channel: Channel | undefined;
  let nsc: NsmClient | undefined;

  afterEach(async () => {
    await nsc?.dispose().catch(() => undefined);
    nsc = undefined;
    channel?.close();
    channel = undefined;
    await Promise.all(procs.splice(0).map(kill));
  });

  it("hands out addresses as ports, keeps them across an endpoint restart and frees them on Close", async () => {
    const registryUrl = `tcp://127.0.0.1:${await freePort()}`;
    await start("cmd-registry", { NSM_NAME: "registry", NSM_LISTEN_ON: registryUrl }, "cmd-registry serving", procs);
    channel = dial(registryUrl);
    await createClient(NetworkManager, channel).createNetwork({ id: "n1", cidr: "198.51.100.0/24" });
    await createClient(SubnetManager, channel).createSubnet({ id: "s1", networkId: "n1", cidr: "198.51.100.16/28" });
    const ports = createClient(PortManager, channel);

    const endpointUrl = `tcp://127.0.0.1:${await freePort()}`;
    const nseVars = {
      NSM_NAME: "nse-ipam",
      NSM_CONNECT_TO: registryUrl,
      NSM_LISTEN_ON: endpointUrl,
      NSM_SERVICE_NAMES: "ipam-svc",
      NSM_IPAM_URL: registryUrl,
      NSM_SUBNET: "s1",
    };
    const first = await start("cmd-endpoint", nseVars, "cmd-endpoint serving", procs);
    expect(first.records.find((r) => r.msg === "cmd-endpoint serving")).to.include({ ipamUrl: registryUrl, subnet: "s1" });

    nsc = client({
      name: "nsc-ipam",
      connectTo: endpointUrl,
      tokenGenerator: createTokenGenerator(await devIdentity("nsc-ipam"), { maxTokenLifetimeMs: 60_000 }),
      insecure: true,
      refresh: false,
      heal: false,
      requestTimeoutMs: 10_000,
    });
    const conn = await nsc.request({ connection: { networkService: "ipam-svc" }, mechanismPreferences: [mechanisms.noop.mechanism()] });
    const ip = conn.context?.ipContext;
    expect(ip?.dstIpAddrs).to.deep.equal(["198.51.100.18/32"]); // .16 network, .17 gateway, .31 broadcast are reserved
    expect(ip?.srcIpAddrs).to.deep.equal(["198.51.100.19/32"]);
    const nseConnId = conn.path?.pathSegments.at(-1)?.id;
    expect(nseConnId).to.be.a("string");
    const listed = (await ports.listPorts({ subnetId: "s1" })).items;
    expect(listed.map((p) => [p.owner, p.fixedIps.map((f) => f.ipAddress)])).to.deep.equal([
      [nseConnId, ["198.51.100.18", "198.51.100.19"]],
    ]);

    // The endpoint dies without closing anything; a new process with the same name and URL takes over.
    await kill(first);
    const second = await start("cmd-endpoint", nseVars, "cmd-endpoint serving", procs);
    const refreshed = await nsc.request({ connection: conn, mechanismPreferences: [mechanisms.noop.mechanism()] });
    expect(refreshed.path?.pathSegments.at(-1)?.id).to.equal(nseConnId);
    expect(refreshed.context?.ipContext?.dstIpAddrs).to.deep.equal(["198.51.100.18/32"]);
    expect(refreshed.context?.ipContext?.srcIpAddrs).to.deep.equal(["198.51.100.19/32"]);
    expect((await ports.listPorts({ subnetId: "s1" })).items).to.have.length(1);
    expect(second.records.some((r) => r.msg === "resourceipam: reusing the connection's port from the resource manager")).to.equal(true);

    await nsc.close(refreshed);
    expect((await ports.listPorts({ subnetId: "s1" })).items).to.deep.equal([]);
  });
});
