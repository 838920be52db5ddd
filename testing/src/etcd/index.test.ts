import { existsSync } from "node:fs";
import { expect } from "chai";
import { Etcd3 } from "etcd3";
import { type EtcdInstance, etcdAvailable, seedEtcd, startEtcd } from "./index.js";

describe("tools/etcdtest", function () {
  this.timeout(30_000);
  let etcd: EtcdInstance | undefined;
  let client: Etcd3 | undefined;

  before(function () {
    const check = etcdAvailable();
    if (!check.available) this.skip();
  });

  afterEach(async () => {
    client?.close();
    client = undefined;
    await etcd?.stop();
    etcd = undefined;
  });

  it("reports a missing binary with a reason", () => {
    const check = etcdAvailable("/nonexistent/etcd");
    expect(check.available).to.equal(false);
    expect(check.reason).to.contain("/nonexistent/etcd");
  });

  it("starts a healthy etcd on loopback, serves a put/get, and cleans up on stop", async () => {
    etcd = await startEtcd();
    expect(etcd.endpoints).to.have.length(1);
    expect(etcd.endpoints[0]).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    client = new Etcd3({ hosts: etcd.endpoints });
    await client.put("k").value("v");
    expect(await client.get("k").string()).to.equal("v");
    client.close();
    client = undefined;
    const dir = etcd.dataDir;
    expect(existsSync(dir)).to.equal(true);
    await etcd.stop();
    etcd = undefined;
    expect(existsSync(dir)).to.equal(false);
  });

  it("seeds many keys in batched transactions", async () => {
    etcd = await startEtcd();
    const n = 1000;
    const entries = Array.from({ length: n }, (_, i) => [`/seed/${i}`, new TextEncoder().encode(`v${i}`)] as const);
    const revision = await seedEtcd(etcd.endpoints, entries, { batch: 100 });
    expect(Number(revision)).to.be.greaterThan(1);
    client = new Etcd3({ hosts: etcd.endpoints });
    expect(await client.getAll().prefix("/seed/").count()).to.equal(n);
    expect(await client.get("/seed/999").string()).to.equal("v999");
  });

  it("restarts on the same ports and data", async () => {
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.endpoints });
    await client.put("k").value("v");
    client.close();
    await etcd.restart();
    client = new Etcd3({ hosts: etcd.endpoints });
    expect(await client.get("k").string()).to.equal("v");
  });
});
