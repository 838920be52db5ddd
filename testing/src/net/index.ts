/**
 * Loopback ports for tests and benchmarks that start servers of their own.
 *
 * A port is chosen now and listened on later (servers are registered by URL before they listen, and restarted on
 * the same URL), so in between something else may take it. Two things did: a port the kernel gave for `bind(0)`
 * is from its ephemeral range, which is also where every outgoing connection takes its local port, so a
 * connection made meanwhile could hold it (`EADDRINUSE` at listen, seen in CI); and the kernel may give the same
 * free port to two callers that have not listened yet. So ports are taken at random below the ephemeral range
 * (`/proc/sys/net/ipv4/ip_local_port_range`), checked free by binding them, and never handed out twice by one
 * process.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/** Ports this process has handed out. */
const handedOut = new Set<number>();

/** Lowest port used; below it are well-known and registered services' ports. */
const LOWEST = 10_000;

/** The first port of the kernel's ephemeral range (Linux default 32768). */
function ephemeralStart(): number {
  try {
    const first = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > 0 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

/** Binds 127.0.0.1:`port` (0: any) for a moment; the bound port, or undefined when it is taken. */
function tryBind(port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", (err: NodeJS.ErrnoException) =>
      err.code === "EADDRINUSE" || err.code === "EACCES" ? resolve(undefined) : reject(err),
    );
    s.listen(port, "127.0.0.1", () => {
      const addr = s.address();
      s.close(() => resolve(addr !== null && typeof addr !== "string" ? addr.port : undefined));
    });
  });
}

/** Asks for `n` distinct free loopback ports, none handed out before by this process. */
export async function freePorts(n: number): Promise<number[]> {
  const high = ephemeralStart();
  const span = high - LOWEST;
  const ports: number[] = [];
  for (let tries = 0; ports.length < n; tries++) {
    if (span < 1_000 || tries > 1_000) {
      // No room below the ephemeral range (an unusual ip_local_port_range): the kernel's choice, still never twice.
      const p = await tryBind(0);
      if (p !== undefined && !handedOut.has(p)) {
        handedOut.add(p);
        ports.push(p);
      }
      continue;
    }
    const candidate = LOWEST + Math.floor(Math.random() * span);
    if (handedOut.has(candidate)) continue;
    if ((await tryBind(candidate)) === undefined) continue;
    handedOut.add(candidate);
    ports.push(candidate);
  }
  return ports;
}

/** A free loopback TCP port (see the header: below the ephemeral range, never handed out twice). */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0] as number;
}
