/** Loopback ports for tests and benchmarks that start servers of their own. */
import { createServer } from "node:net";

/** Asks the kernel for `n` distinct free loopback ports (bind to port 0, read it, close). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => {
      return new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
        const s = createServer();
        s.once("error", reject);
        s.listen(0, "127.0.0.1", () => resolve(s));
      });
    }),
  );
  const ports = servers.map((s) => {
    const addr = s.address();
    if (addr === null || typeof addr === "string") throw new Error("freePorts: no port");
    return addr.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/** A free loopback TCP port (bound and released at once). */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0] as number;
}
