import { statSync } from "node:fs";
import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import { currentNetns, Netns, netnsInodeUrl, openNetns, parseNetnsUrl, validateNetnsName } from "./index.js";

function code(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof StatusError ? err.code : -1;
  }
  return undefined;
}

describe("netns: parseNetnsUrl", () => {
  it("parses file:///proc/<pid>/ns/net as a path namespace", () => {
    expect(parseNetnsUrl("file:///proc/1234/ns/net")).to.deep.equal({ kind: "path", path: "/proc/1234/ns/net" });
  });

  it("rewrites thread-self and self to the concrete pid of this process", () => {
    expect(parseNetnsUrl("file:///proc/thread-self/ns/net", 42).path).to.equal("/proc/42/ns/net");
    expect(parseNetnsUrl("/proc/self/ns/net", 42).path).to.equal("/proc/42/ns/net");
    expect(parseNetnsUrl("/proc/thread-self/ns/net").path).to.equal(`/proc/${process.pid}/ns/net`);
  });

  it("recognises named namespaces by path, file URL and bare name", () => {
    const want = { kind: "named", name: "blue", path: "/run/netns/blue" };
    expect(parseNetnsUrl("/var/run/netns/blue")).to.deep.equal(want);
    expect(parseNetnsUrl("/run/netns/blue")).to.deep.equal(want);
    expect(parseNetnsUrl("file:///var/run/netns/blue")).to.deep.equal(want);
    expect(parseNetnsUrl("blue")).to.deep.equal(want);
  });

  it("keeps other absolute paths (bind mounts) as path namespaces and normalises them", () => {
    expect(parseNetnsUrl("/var/lib/x//ns/./net")).to.deep.equal({ kind: "path", path: "/var/lib/x/ns/net" });
    expect(parseNetnsUrl("file:///tmp/my%20ns")).to.deep.equal({ kind: "path", path: "/tmp/my ns" });
  });

  it("rejects other schemes, relative paths, '..' and bad names", () => {
    expect(code(() => parseNetnsUrl("inode://4/4026531833"))).to.equal(Code.InvalidArgument);
    expect(code(() => parseNetnsUrl("proc/1/ns/net"))).to.equal(Code.InvalidArgument);
    expect(code(() => parseNetnsUrl("/proc/1/../2/ns/net"))).to.equal(Code.InvalidArgument);
    expect(code(() => parseNetnsUrl(""))).to.equal(Code.InvalidArgument);
    expect(code(() => parseNetnsUrl("bad name"))).to.equal(Code.InvalidArgument);
    expect(code(() => validateNetnsName("x".repeat(65)))).to.equal(Code.InvalidArgument);
    expect(code(() => validateNetnsName(".."))).to.equal(Code.InvalidArgument);
  });
});

describe("netns: Netns handle", () => {
  const named = new Netns("blue", parseNetnsUrl("blue"), 10, 4, false);
  const byPath = new Netns("file:///proc/7/ns/net", parseNetnsUrl("file:///proc/7/ns/net"), 11, 4, false);
  const current = new Netns("/proc/self/ns/net", parseNetnsUrl("/proc/self/ns/net"), 12, 4, true);

  it("runs ip with -n for named namespaces, nsenter for paths and directly in its own netns", () => {
    expect(named.ipArgv(["link", "show"])).to.deep.equal(["ip", "-n", "blue", "link", "show"]);
    expect(byPath.ipArgv(["link", "show"])).to.deep.equal(["nsenter", "--net=/proc/7/ns/net", "ip", "link", "show"]);
    expect(current.ipArgv(["link", "show"])).to.deep.equal(["ip", "link", "show"]);
    expect(byPath.ipArgv(["-V"], { ip: "/sbin/ip", nsenter: "/usr/bin/nsenter" })).to.deep.equal([
      "/usr/bin/nsenter",
      "--net=/proc/7/ns/net",
      "/sbin/ip",
      "-V",
    ]);
    expect(named.execArgv(["ping", "-c1", "203.0.113.1"])).to.deep.equal([
      "nsenter",
      "--net=/run/netns/blue",
      "ping",
      "-c1",
      "203.0.113.1",
    ]);
  });

  it("names the link target by name or path and compares by inode", () => {
    expect(named.linkTarget).to.equal("blue");
    expect(byPath.linkTarget).to.equal("/proc/7/ns/net");
    expect(named.sameAs(new Netns("/var/run/netns/blue", parseNetnsUrl("/var/run/netns/blue"), 10, 4, false))).to.equal(true);
    expect(named.sameAs(byPath)).to.equal(false);
  });

  it("opens this process's own namespace through thread-self and reports NotFound for missing ones", async () => {
    const own = await openNetns("/proc/thread-self/ns/net");
    expect(own.isCurrent).to.equal(true);
    expect(own.path).to.equal(`/proc/${process.pid}/ns/net`);
    expect(own.inode).to.be.greaterThan(0);
    const cur = await currentNetns();
    expect(cur.sameAs(own)).to.equal(true);
    await cur.verify();
    const stale = new Netns("/proc/self/ns/net", parseNetnsUrl("/proc/self/ns/net"), own.inode + 1, own.dev, false);
    const staleErr = await stale.verify().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((staleErr as StatusError).code).to.equal(Code.NotFound);
    const err = await openNetns("nsmts-does-not-exist-0").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(StatusError);
    expect((err as StatusError).code).to.equal(Code.NotFound);
    expect((err as StatusError).message).to.contain("nsmts-does-not-exist-0");
  });

  it("names its own namespace as inode://<dev>/<ino> and resolves that URL back to it through /proc", async () => {
    const st = statSync("/proc/self/ns/net");
    const url = netnsInodeUrl();
    expect(url).to.equal(`inode://${st.dev}/${st.ino}`);
    const ns = await openNetns(url);
    expect(ns.isCurrent).to.equal(true);
    expect(ns.inode).to.equal(st.ino);
    expect(ns.path).to.match(/^\/(proc\/\d+\/ns\/net|run\/netns\/.+)$/);
    await ns.verify();
  });

  it("rejects malformed inode URLs and reports NotFound for a namespace no process is in", async () => {
    const codeOf = (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (e: unknown) => (e instanceof StatusError ? e.code : -1),
      );
    expect(await codeOf(openNetns("inode://4/"))).to.equal(Code.InvalidArgument);
    expect(await codeOf(openNetns("inode://x/1"))).to.equal(Code.InvalidArgument);
    expect(await codeOf(openNetns("inode://1/1"))).to.equal(Code.NotFound);
  });
});
