import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, rmSync, watch, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type EtcdInstance, etcdAvailable, startEtcd } from "@nsm-ts/testing/etcd";
import { expect } from "chai";
import { bareRepo, pushedSequences, tempDir } from "./delivery.fixture.js";
import { type ControllerProcess, postJson, startController } from "./process.fixture.js";

/** Resolves when `file` appears (fs.watch on its directory: the event, not a poll). */
function fileAppears(file: string): Promise<void> {
  const dir = join(file, "..");
  return new Promise((resolve) => {
    const w = watch(dir, () => {
      if (existsSync(file)) {
        w.close();
        resolve();
      }
    });
    if (existsSync(file)) {
      w.close();
      resolve();
    }
  });
}

const seedBodies = (repo: string) =>
  [
    ["ClusterService/CreateCluster", { name: "edge-b", target: { gitUrl: repo } }],
    ["ClusterService/CreateCluster", { name: "edge-a", target: {} }],
    ["TrafficGroupService/CreateTrafficGroup", { name: "shop" }],
    [
      "IntentService/CreateIntent",
      {
        trafficGroup: "shop",
        name: "expose-a",
        inbound: { service: "a", cluster: "edge-a", ports: [{ number: 8080 }], allowedClients: [{ app: "b" }] },
      },
    ],
  ] as const;
const outbound = (timeout: string) => ({
  trafficGroup: "shop",
  name: "b-calls-a",
  outbound: { clientApp: "b", cluster: "edge-b", service: "a", timeout },
});

describe("cmd-traffic-controller processes on one etcd", function () {
  this.timeout(120_000);
  let etcd: EtcdInstance | undefined;
  let tmp: ReturnType<typeof tempDir>;
  const procs: ControllerProcess[] = [];

  before(async function () {
    const check = etcdAvailable();
    if (!check.available) {
      console.warn(`    skipping the traffic-controller process cases: ${check.reason}`);
      this.skip();
    }
    etcd = await startEtcd({ tmpDir: "/dev/shm" });
  });
  after(async () => {
    await etcd?.stop();
  });
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(async () => {
    // Unblock any hook a killed controller's push is still waiting in, then stop everything.
    rmSync(join(tmp.dir, "block"), { force: true });
    await Promise.all(procs.splice(0).map((p) => p.stop()));
    tmp.cleanup();
  });

  it("SIGKILL mid-delivery, then restart: nothing lost, nothing pushed twice", async () => {
    if (etcd === undefined) return;
    const prefix = `/t/${Math.random().toString(36).slice(2)}/`;
    const repo = bareRepo(join(tmp.dir, "edge-b.git"));
    // The first push of entry 2 blocks in post-receive (after the remote took it) until the block file goes.
    const marker = join(tmp.dir, "pushed-2");
    writeFileSync(join(tmp.dir, "block"), "");
    const hook = join(repo, "hooks", "post-receive");
    writeFileSync(
      hook,
      `#!/bin/sh\ngit log -1 --format=%B | grep -q '^Nsmts-Sequence: 2$' || exit 0\ntouch '${marker}'\nwhile [ -e '${join(tmp.dir, "block")}' ]; do sleep 0.05; done\n`,
    );
    chmodSync(hook, 0o755);
    const a = await startController(etcd.endpoints, prefix, join(tmp.dir, "work-a"));
    procs.push(a);
    for (const [m, body] of seedBodies(repo)) await postJson(a.httpUrl, m, body);
    await postJson(a.httpUrl, "IntentService/CreateIntent", outbound("2s"));
    await a.waitForLog((l) => l.msg === "traffic-controller: delivered" && l.seq === "1");
    await postJson(a.httpUrl, "IntentService/UpdateIntent", outbound("3s"));
    await fileAppears(marker);
    await a.stop("SIGKILL"); // entry 2 is in the remote but still in the outbox
    rmSync(hook);
    rmSync(join(tmp.dir, "block"), { force: true });
    mkdirSync(join(tmp.dir, "work-b"));
    const b = await startController(etcd.endpoints, prefix, join(tmp.dir, "work-b"));
    procs.push(b);
    await postJson(b.httpUrl, "IntentService/UpdateIntent", outbound("4s"));
    await b.waitForLog((l) => l.msg === "traffic-controller: delivered" && l.seq === "3");
    expect(pushedSequences(repo)).to.deep.equal([1, 2, 3]);
    const st = (await postJson(b.httpUrl, "IntentService/ListIntentStatus", { cluster: "edge-b" })) as {
      items: Array<{ intent: string; state: string }>;
    };
    expect(st.items.map((s) => `${s.intent}:${s.state}`)).to.deep.equal(["b-calls-a:DELIVERY_STATE_APPLIED"]);
    // The operator CLI shows the same.
    const cli = spawnSync(
      process.execPath,
      [fileURLToPath(new URL("../bin/cmd-traffic-controller.js", import.meta.url)), "status", "--cluster", "edge-b"],
      {
        env: { ...process.env, NSM_TRAFFIC_CONTROLLER_URL: b.grpcUrl },
        encoding: "utf8",
        timeout: 30_000,
      },
    );
    expect(cli.status, cli.stderr).to.equal(0);
    const rows = cli.stdout.trim().split("\n");
    expect(rows[0]).to.equal("INTENT\tCLUSTER\tTARGET\tSTATE\tREVISION\tSEQUENCE\tDETAIL");
    expect(rows.slice(1).map((r) => r.split("\t").slice(0, 4).join(" "))).to.deep.equal(["shop/b-calls-a edge-b git applied"]);
    expect(rows[1]?.split("\t")[5]).to.equal("3");
  });

  it("two replicas on one etcd deliver each update once", async () => {
    if (etcd === undefined) return;
    const prefix = `/t/${Math.random().toString(36).slice(2)}/`;
    const repo = bareRepo(join(tmp.dir, "edge-b.git"));
    const a = await startController(etcd.endpoints, prefix, join(tmp.dir, "work-a"));
    const b = await startController(etcd.endpoints, prefix, join(tmp.dir, "work-b"));
    procs.push(a, b);
    for (const [m, body] of seedBodies(repo)) await postJson(a.httpUrl, m, body);
    // Writes through both replicas, interleaved.
    await postJson(b.httpUrl, "IntentService/CreateIntent", outbound("1s"));
    for (let i = 2; i <= 10; i++) await postJson(i % 2 === 0 ? a.httpUrl : b.httpUrl, "IntentService/UpdateIntent", outbound(`${i}s`));
    const delivered = (p: ControllerProcess) => p.waitForLog((l) => l.msg === "traffic-controller: delivered" && l.seq === "10");
    await Promise.race([delivered(a), delivered(b)]);
    expect(pushedSequences(repo)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });
});
