/**
 * DNS through cmd-nsc's forwarder, real programs and namespaces (single-node KERNEL mesh): cmd-endpoint hands
 * out a DNS config (NSM_DNS_CONFIGS) naming a member-name server that runs in a fourth netns, reached from the
 * client's pod over a veth pair of the test's own. Inside the client's netns `getent hosts` resolves the member
 * name through the forwarder: glibc reads /etc/netns/<ns>/resolv.conf, bind-mounted by `ip netns exec`, which
 * cmd-nsc pointed at 127.0.0.1. After SIGTERM the file is the test's original again and nothing of ours is left.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { runCommand } from "@nsm-ts/sdk-linux";
import { expect } from "chai";
import { bare, ip } from "../cluster/cluster.js";
import { connOf, SERVICE, useSingleNode } from "../cluster/single-node.fixture.js";

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), "member-dns.fixture.js");
const ORIGINAL = "# the test's resolver config for this netns\nnameserver 203.0.113.53\nsearch example.test\n";

/** The member-name server process in netns `ns`: its address, and a way to set names. */
async function startMemberDns(
  ns: string,
  listen: string,
): Promise<{ child: ChildProcess; at: string; send: (cmd: object) => Promise<void> }> {
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, FIXTURE], {
    env: { ...process.env, MEMBER_DNS_LISTEN: listen },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const next = (): Promise<Record<string, unknown>> =>
    once(lines, "line").then(([l]) => JSON.parse(l as string) as Record<string, unknown>);
  const first = await next();
  return {
    child,
    at: String(first.listening),
    send: async (cmd) => {
      const ack = next();
      child.stdin?.write(`${JSON.stringify(cmd)}\n`);
      await ack;
    },
  };
}

async function getent(ns: string, name: string): Promise<string> {
  const r = await runCommand(["ip", "netns", "exec", ns, "getent", "hosts", name]);
  return r.code === 0 ? r.stdout.trim() : `exit ${r.code}`;
}

describe("DNS: cmd-nsc's forwarder in the client's netns, real programs", function () {
  this.timeout(180_000);
  const mesh = useSingleNode();
  let member: ChildProcess | undefined;
  let etcDir = "";

  afterEach(async () => {
    if (member && member.exitCode === null) {
      const exited = once(member, "exit");
      member.kill("SIGKILL");
      await exited;
    }
    member = undefined;
    if (etcDir) rmSync(etcDir, { recursive: true, force: true });
    etcDir = "";
  });

  it("getent resolves <client>.<service>. through the forwarder; SIGTERM restores the resolver config and leaves nothing", async () => {
    const { ns, fx } = mesh;
    // The member-name server's netns, joined to the client's pod by a veth pair of the test's own.
    await fx.netns("d");
    const nsD = fx.names.at(-1) ?? "";
    await ip("-n", nsD, "link", "set", "lo", "up");
    await ip("-n", ns.a, "link", "add", "dnst0", "type", "veth", "peer", "name", "dnst1", "netns", nsD);
    await ip("-n", ns.a, "addr", "add", "169.254.53.2/30", "dev", "dnst0");
    await ip("-n", ns.a, "link", "set", "dnst0", "up");
    await ip("-n", nsD, "addr", "add", "169.254.53.1/30", "dev", "dnst1");
    await ip("-n", nsD, "link", "set", "dnst1", "up");
    const names = await startMemberDns(nsD, "169.254.53.1:5353");
    member = names.child;

    // The client's netns gets its own resolver config, which `ip netns exec` bind-mounts over /etc/resolv.conf.
    etcDir = join("/etc/netns", ns.a);
    expect(existsSync(etcDir), `${etcDir} exists before the test`).to.equal(false);
    mkdirSync(etcDir, { recursive: true });
    const resolvConf = join(etcDir, "resolv.conf");
    writeFileSync(resolvConf, ORIGINAL);

    await mesh.startEndpoint("nse-1", { NSM_DNS_CONFIGS: JSON.stringify([{ dns_server_ips: [names.at], search_domains: [SERVICE] }]) });
    const nsc = mesh.startClient();
    const conn = connOf(await nsc.waitFor("connected", () => true, 60_000));
    await nsc.waitFor("dns: forwarder serving the connections' DNS configs", () => true, 30_000);
    const src = bare(conn.srcIpAddrs[0] ?? "");
    await names.send({ set: `nsc-1.${SERVICE}.`, ips: [src] });

    const conf = readFileSync(resolvConf, "utf8");
    expect(conf).to.match(/^nameserver 127\.0\.0\.1$/m);
    expect(conf).to.match(new RegExp(`^search ${SERVICE} example\\.test$`, "m"));
    expect(await getent(ns.a, `nsc-1.${SERVICE}.`)).to.match(new RegExp(`^${src.replaceAll(".", "\\.")}\\s+nsc-1\\.${SERVICE}\\.?$`));
    // The short name too, through the search list cmd-nsc wrote.
    expect(await getent(ns.a, "nsc-1")).to.match(new RegExp(`^${src.replaceAll(".", "\\.")}\\s`));
    await names.send({ delete: `nsc-1.${SERVICE}.` });
    expect(await getent(ns.a, `nsc-1.${SERVICE}.`), "a removed name is gone").to.equal("exit 2");

    const { code } = await nsc.stop("SIGTERM");
    expect(code, nsc.output()).to.equal(0);
    expect(readFileSync(resolvConf, "utf8"), "the original resolver config is back").to.equal(ORIGINAL);
    expect(readdirSync(etcDir), "no file of ours under /etc/netns").to.deep.equal(["resolv.conf"]);
    const listening = await runCommand(["ip", "netns", "exec", ns.a, "ss", "-Hlnu", "sport", "=", ":53"]);
    expect(listening.stdout.trim(), "no forwarder left listening").to.equal("");
  });
});
