#!/usr/bin/env node
// `npm start`: a whole single-node mesh on this machine as real processes — cmd-registry (in memory), cmd-nsmgr,
// cmd-forwarder, one cmd-endpoint (icmp-responder) and one cmd-nsc — with sockets in a temp dir and tcp on free
// loopback ports. It prints the connection the client got, follows its refreshes until Ctrl-C, then stops the
// programs in order (client first, so it closes its connection; registry last), removes what it created and exits 0.
// A second Ctrl-C at least NSM_START_FORCE_AFTER_MS (default 2000) after the first kills everything at once and exits
// 1; signals sooner than that are copies of the first (the terminal signals npm and this script, npm passes its copy
// on) and are ignored.
// The kernel data plane is used when running as root and the forwarder accepts it; NOOP otherwise (it says which).
// Environment: NSM_START_DATAPLANE=auto|noop|kernel (default auto), NSM_LOG_LEVEL for the programs (default INFO),
// NSM_START_VERBOSE=1 to echo every program log line, NSM_START_FORCE_AFTER_MS as above.
// The programs' processes live in start/programs.js, what the script prints in start/output.js.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describePing, pingOnce } from "./ping.js";
import { clock, out, printConnection } from "./start/output.js";
import { binOf, freePort, killAllNow, programs, root, showWarnings, startProgram, stopProgram, tail, verbose } from "./start/programs.js";

const SERVICE = "icmp-responder";
const CIDR = "169.254.100.0/24";
const FORCE_AFTER_MS = forceAfterMs(process.env.NSM_START_FORCE_AFTER_MS);
const t0 = Date.now();

function forceAfterMs(v) {
  if (v === undefined || v === "") return 2_000;
  const ms = Number(v);
  if (!Number.isInteger(ms) || ms < 0) throw new Error(`NSM_START_FORCE_AFTER_MS=${v}: want a whole number of milliseconds`);
  return ms;
}

const netnsCreated = [];
let tempDir;
let stopping = false;

function cleanupFiles() {
  for (const ns of netnsCreated.splice(0)) spawnSync("ip", ["netns", "del", ns], { stdio: "ignore" });
  if (tempDir !== undefined) rmSync(tempDir, { recursive: true, force: true });
  tempDir = undefined;
}

process.on("exit", () => {
  killAllNow();
  cleanupFiles();
});

/** Stops every program in reverse start order, client first; returns true when all ended by themselves. */
let shuttingDown;
function shutdown(reason) {
  shuttingDown ??= doShutdown(reason);
  return shuttingDown;
}

async function doShutdown(reason) {
  stopping = true;
  out(`\n${reason}: stopping the mesh`);
  let clean = true;
  const byName = (n) => programs.filter((p) => p.name === n);
  const stages = [["nsc"], ["endpoint", "forwarder"], ["nsmgr"], ["registry"]];
  for (const stage of stages) {
    const results = await Promise.all(stage.flatMap(byName).map(async (p) => [p.name, await stopProgram(p)]));
    for (const [name, how] of results) {
      out(`  ${name.padEnd(10)} ${how}`);
      if (how === "killed after timeout") clean = false;
    }
  }
  cleanupFiles();
  return clean;
}

/** What data plane to use and why. */
function chooseDataPlane() {
  const wanted = (process.env.NSM_START_DATAPLANE ?? "auto").toLowerCase();
  if (wanted === "noop") return { kernel: false, why: "NSM_START_DATAPLANE=noop" };
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot) return { kernel: false, why: "not running as root" };
  if (spawnSync("ip", ["-V"], { stdio: "ignore" }).status !== 0) return { kernel: false, why: "the ip command is missing" };
  return { kernel: true, why: wanted === "kernel" ? "NSM_START_DATAPLANE=kernel" : "running as root" };
}

async function main() {
  tempDir = mkdtempSync(join(tmpdir(), "nsm-start-"));
  for (const p of ["cmd-registry", "cmd-nsmgr", "cmd-forwarder", "cmd-endpoint", "cmd-nsc"]) {
    if (!existsSync(binOf(p)) || !existsSync(join(root, p, "dist", "main.js"))) {
      throw new Error(`${p} is not built: run npm run build (npm start does it)`);
    }
  }
  let plane = chooseDataPlane();
  out(`nsm-ts: starting a single-node mesh in ${tempDir} (this script is process ${process.pid})`);
  out("insecure dev mode: no certificates, tokens are not verified (fine for this local demo only)");

  const [registryPort, nsmgrPort] = [await freePort(), await freePort()];
  const registryUrl = `tcp://127.0.0.1:${registryPort}`;
  const nsmgrSocket = `unix://${join(tempDir, "nsm.io.sock")}`;
  const nscGate = join(tempDir, "nsc-gate.sock");
  const nodeName = "node-1";

  const netns = {};
  if (plane.kernel) {
    for (const role of ["nsc", "nse"]) {
      const ns = `nsm-start-${process.pid}-${role}`;
      const r = spawnSync("ip", ["netns", "add", ns], { encoding: "utf8" });
      if (r.status !== 0) {
        plane = { kernel: false, why: `ip netns add failed: ${r.stderr.trim()}` };
        break;
      }
      netnsCreated.push(ns);
      spawnSync("ip", ["-n", ns, "link", "set", "lo", "up"], { stdio: "ignore" });
      netns[role] = ns;
    }
  }

  // Every program starts at once (loading Node and gRPC is most of the start-up time); the ones that register or
  // request retry until the ones they need are up.
  const registry = startProgram("registry", "cmd-registry", { NSM_NAME: "registry", NSM_LISTEN_ON: registryUrl }, "cmd-registry serving");
  const nsmgr = startProgram(
    "nsmgr",
    "cmd-nsmgr",
    {
      NSM_NAME: "nsmgr-1",
      NODE_NAME: nodeName,
      NSM_LISTEN_ON: `${nsmgrSocket},tcp://127.0.0.1:${nsmgrPort}`,
      NSM_REGISTRY_URL: registryUrl,
    },
    "cmd-nsmgr serving",
  );
  const forwarderOf = (mechanism) =>
    startProgram(
      "forwarder",
      "cmd-forwarder",
      {
        // The forwarder marks its links with its name and, at start, takes stock of every link marked so: a name
        // per run keeps two demos on one machine out of each other's interfaces.
        NSM_NAME: `forwarder-${process.pid}`,
        NSM_CONNECT_TO: nsmgrSocket,
        NSM_LISTEN_ON: `unix://${join(tempDir, `forwarder-${mechanism.toLowerCase()}.sock`)}`,
        NSM_FORWARDER_MECHANISM: mechanism,
      },
      "cmd-forwarder serving",
    );
  const endpoint = startProgram(
    "endpoint",
    "cmd-endpoint",
    {
      NSM_NAME: "nse-icmp-responder",
      NSM_CONNECT_TO: nsmgrSocket,
      NSM_LISTEN_ON: `unix://${join(tempDir, "endpoint.sock")}`,
      NSM_SERVICE_NAMES: SERVICE,
      NSM_CIDR_PREFIX: CIDR,
      NSM_REGISTER_SERVICE: "true",
    },
    "cmd-endpoint serving",
    netns.nse ? { netns: netns.nse } : {},
  );
  const nscOf = (kernel) => {
    const nsUrl = kernel ? `kernel://${SERVICE}/nsm-1` : `noop://${SERVICE}`;
    const nsc = startProgram(
      "nsc",
      "cmd-nsc",
      { NSM_NAME: "nsc-1", NSM_CONNECT_TO: `unix://${nscGate}`, NSM_NETWORK_SERVICES: nsUrl, NODE_NAME: nodeName },
      "connected",
      netns.nsc ? { netns: netns.nsc } : {},
    );
    return { ...nsc, nsUrl };
  };
  let forwarder = forwarderOf(plane.kernel ? "KERNEL" : "NOOP");
  let nsc = nscOf(plane.kernel);
  if (plane.kernel) {
    try {
      await forwarder.ready;
    } catch (err) {
      // The kernel forwarder refused to start (privileges, iproute2): the rest of the mesh works the same on NOOP.
      const why = /KERNEL[^\n]*/.exec(String(err.message))?.[0] ?? String(err.message).split("\n")[0];
      plane = { kernel: false, why: `the kernel data plane is not available: ${why}` };
      programs.splice(programs.indexOf(forwarder.p), 1);
      await stopProgram(nsc.p);
      programs.splice(programs.indexOf(nsc.p), 1);
      forwarder = forwarderOf("NOOP");
      nsc = nscOf(false);
    }
  }
  out(
    `data plane: ${plane.kernel ? "KERNEL (veth pairs into network namespaces this script created)" : "NOOP (control plane only)"} — ${plane.why}`,
  );
  await Promise.all([registry.ready, nsmgr.ready, forwarder.ready, endpoint.ready]);
  out(`  registry   ${registryUrl.padEnd(44)} pid ${registry.p.child.pid}`);
  out(`  nsmgr      ${`${nsmgrSocket} + tcp :${nsmgrPort}`.padEnd(44)} pid ${nsmgr.p.child.pid}`);
  out(`  forwarder  ${(plane.kernel ? "KERNEL" : "NOOP").padEnd(44)} pid ${forwarder.p.child.pid}`);
  out(`  endpoint   ${`${SERVICE} from ${CIDR}`.padEnd(44)} pid ${endpoint.p.child.pid}`);
  // The client reaches the nsmgr only now, once its forwarder and endpoint are registered, so its first Request
  // never races their registrations: it dials a symlink that appears here, and could load and retry meanwhile.
  symlinkSync(join(tempDir, "nsm.io.sock"), nscGate);
  const connected = await nsc.ready;
  if (verbose) out(`ready after ${programs.map((p) => `${p.name} ${((p.readyAt ?? 0) - t0) / 1000} s`).join(", ")}`);
  out(`  nsc        ${nsc.nsUrl.padEnd(44)} pid ${nsc.p.child.pid}`);
  printConnection(connected.connection, Date.now() - t0);
  if (plane.kernel && netns.nsc) {
    // Show that packets really flow: one ping from the client's netns over nsm-1 to the endpoint's address.
    const dst = (connected.connection.dstIpAddrs[0] ?? "").split("/")[0];
    out(`  ping ${dst} from the client's netns over nsm-1: ${describePing(await pingOnce(dst, { netns: netns.nsc }))}`);
  }
  out("keeping the connection refreshed; press Ctrl-C to stop");
  showWarnings();
  nsc.p.waitFor("connection refreshed", (rec) => {
    const c = rec.connection;
    const exp = c.path
      .map((s) => s.expires)
      .filter(Boolean)
      .sort()[0];
    out(
      `refreshed at ${clock()}: state ${c.state}, ${c.path.length} segments (${c.path.map((s) => s.name).join(" > ")})${exp ? `, next expiry ${clock(new Date(exp))}` : ""}`,
    );
  });
  // A program that dies on its own ends the demo.
  return new Promise((resolveDied) => {
    for (const p of programs) {
      p.child.once("exit", (code, signal) => {
        if (!stopping) resolveDied(`${p.name} exited unexpectedly (${signal ?? `code ${code}`}):\n${tail(p)}`);
      });
    }
  });
}

let interrupted = false;
let firstSignalAt = 0;
const onSignal = async (sig) => {
  if (interrupted) {
    if (Date.now() - firstSignalAt < FORCE_AFTER_MS) {
      out(`${sig}: already stopping`);
      return;
    }
    out(`${sig} again: killing everything`);
    killAllNow();
    cleanupFiles();
    process.exit(1);
  }
  interrupted = true;
  firstSignalAt = Date.now();
  // Only a stop that hangs lasts this long: say how to cut it short.
  setTimeout(() => out(`still stopping; press Ctrl-C again to kill everything`), FORCE_AFTER_MS).unref();
  const clean = await shutdown(sig === "SIGINT" ? "Ctrl-C" : sig);
  out(clean ? "stopped cleanly" : "stopped (some programs had to be killed)");
  process.exit(clean ? 0 : 1);
};
process.on("SIGINT", () => void onSignal("SIGINT"));
process.on("SIGTERM", () => void onSignal("SIGTERM"));
process.on("SIGHUP", () => void onSignal("SIGHUP"));
// `npm start` outside a terminal: a signal sent to npm alone (a process manager, `timeout`) ends npm but not us.
// Once the parent is gone we are re-parented: stop the mesh then, rather than leave six processes behind.
const parentAtStart = process.ppid;
setInterval(() => {
  if (process.ppid !== parentAtStart && !interrupted) void onSignal("npm (our parent) exited");
}, 500).unref();

try {
  const died = await main();
  if (!interrupted) {
    out(died);
    await shutdown("error");
    process.exit(1);
  }
} catch (err) {
  if (!interrupted) {
    out(`nsm-ts start failed: ${err.message}`);
    await shutdown("error");
    process.exit(1);
  }
}
