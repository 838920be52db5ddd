import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { expect } from "chai";
import { freePort, freePorts } from "./index.js";

const listen = (port: number): Promise<Server> =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(port, "127.0.0.1", () => resolve(s));
  });
const close = (s: Server): Promise<void> => new Promise((r) => s.close(() => r()));

describe("testing/net: free loopback ports", () => {
  it("hands out ports below the kernel's ephemeral range, where no outgoing connection takes its local port", async () => {
    const first = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    const ports = await freePorts(20);
    for (const p of ports) {
      expect(p).to.be.at.least(10_000);
      expect(p, "below ip_local_port_range").to.be.below(first);
    }
  });

  it("never hands out one port twice, even before it is listened on", async () => {
    const seen = new Set<number>();
    for (let i = 0; i < 10; i++) for (const p of await freePorts(30)) seen.add(p);
    seen.add(await freePort());
    expect(seen.size).to.equal(301);
  });

  it("gives ports that can be listened on at once", async () => {
    const servers = await Promise.all((await freePorts(5)).map(listen));
    await Promise.all(servers.map(close));
  });
});
