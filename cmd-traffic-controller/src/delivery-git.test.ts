import { chmodSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DeliveryState } from "@nsm-ts/api/intents";
import { MockClock } from "@nsm-ts/base/clock";
import { silentLogger } from "@nsm-ts/base/log";
import { expect } from "chai";
import { createGitTarget } from "./delivery/git.js";
import { runDelivery } from "./delivery/supervisor.js";
import { bareRepo, pushedSequences, showFile, tempDir, waitForStatus } from "./delivery.fixture.js";
import { inboundA, memoryObjects, outboundB, seedShop } from "./intents.fixture.js";
import type { IntentObjects } from "./objects.js";

describe("traffic-controller: delivery to git repositories", function () {
  this.timeout(60_000);
  let tmp: ReturnType<typeof tempDir>;
  let o: IntentObjects;
  let clock: MockClock;
  let ac: AbortController;
  let delivering: Promise<void>;
  let repoA: string;
  let repoB: string;

  beforeEach(async () => {
    tmp = tempDir();
    repoA = bareRepo(join(tmp.dir, "edge-a.git"));
    repoB = bareRepo(join(tmp.dir, "edge-b.git"));
    o = memoryObjects();
    clock = new MockClock();
    ac = new AbortController();
    await seedShop(o, repoA, repoB);
    delivering = runDelivery(
      o.store.kv,
      (c) => createGitTarget({ url: c.target?.gitUrl ?? "", branch: c.target?.gitBranch ?? "", workDir: join(tmp.dir, "work", c.name) }),
      { clock, log: silentLogger, backoffInitialMs: 1_000, backoffMaxMs: 8_000 },
      ac.signal,
    );
  });
  afterEach(async () => {
    ac.abort();
    await delivering;
    expect(clock.pending()).to.equal(0);
    await o.store.kv.close();
    tmp.cleanup();
  });

  const allApplied = (n: number) => (all: { state: DeliveryState }[]) =>
    all.length === n && all.every((s) => s.state === DeliveryState.APPLIED);

  it("commits each cluster's YAML tree and marks every intent applied at its revision", async () => {
    const all = await waitForStatus(o, allApplied(2));
    expect(pushedSequences(repoA)).to.deep.equal([1]);
    expect(pushedSequences(repoB)).to.deep.equal([1]);
    expect(showFile(repoB, "default/virtualservice/b-to-a.yaml")).to.contain("timeout: 2s");
    expect(showFile(repoA, "nsm/authorization/a.yaml")).to.contain("spiffe://cluster.local/ns/default/sa/b");
    const b = all.find((s) => s.intent === "b-calls-a");
    const intent = await o.get("intent", {
      $typeName: "nsmts.intents.v1.ObjectRef",
      trafficGroup: "shop",
      name: "b-calls-a",
      revision: "0",
    });
    expect(b?.intentRevision).to.equal(intent.revision);
  });

  it("a repository unreachable for a while receives every update exactly once, in order, when it returns", async () => {
    await waitForStatus(o, allApplied(2));
    const away = `${repoB}.away`;
    renameSync(repoB, away);
    await o.updateIntent(outboundB("3s"));
    const failed = await waitForStatus(o, (all) => all.some((s) => s.intent === "b-calls-a" && s.state === DeliveryState.FAILED));
    const f = failed.find((s) => s.intent === "b-calls-a");
    expect(f?.attempts).to.equal(1);
    expect(f?.lastError).to.match(/git fetch/);
    await o.updateIntent(outboundB("4s"));
    await o.updateIntent(outboundB("5s"));
    // Still away at the first retry: the next delay doubles (capped exponential backoff on the clock).
    await clock.advance(1_000);
    await waitForStatus(o, (all) => all.some((s) => s.intent === "b-calls-a" && s.attempts === 2));
    expect((clock.nextAt() ?? 0) - clock.now()).to.equal(2_000);
    renameSync(away, repoB);
    await clock.advance(2_000);
    const last = await o.get("intent", { $typeName: "nsmts.intents.v1.ObjectRef", trafficGroup: "shop", name: "b-calls-a", revision: "0" });
    await waitForStatus(o, (all) =>
      all.some((s) => s.intent === "b-calls-a" && s.state === DeliveryState.APPLIED && s.intentRevision === last.revision),
    );
    expect(pushedSequences(repoB)).to.deep.equal([1, 2, 3, 4]);
    expect(showFile(repoB, "default/virtualservice/b-to-a.yaml")).to.contain("timeout: 5s");
    expect(pushedSequences(repoA)).to.deep.equal([1]);
  });

  it("a target that rejects the change shows failed with the reason and retries with backoff", async () => {
    await waitForStatus(o, allApplied(2));
    const hook = join(repoA, "hooks", "pre-receive");
    writeFileSync(hook, "#!/bin/sh\necho 'policy: AuthorizationPolicy changes need review' >&2\nexit 1\n");
    chmodSync(hook, 0o755);
    const i = inboundA();
    if (i.spec.case === "inbound")
      i.spec.value.ports[0] = {
        ...i.spec.value.ports[0],
        $typeName: "nsmts.intents.v1.ServicePort",
        number: 9090,
        protocol: "HTTP",
        name: "",
      };
    await o.updateIntent(i);
    const failed = await waitForStatus(o, (all) => all.some((s) => s.intent === "expose-a" && s.state === DeliveryState.FAILED));
    expect(failed.find((s) => s.intent === "expose-a")?.lastError).to.contain("policy: AuthorizationPolicy changes need review");
    expect((clock.nextAt() ?? 0) - clock.now()).to.equal(1_000);
    await clock.advance(1_000);
    await waitForStatus(o, (all) => all.some((s) => s.intent === "expose-a" && s.attempts === 2));
    expect((clock.nextAt() ?? 0) - clock.now()).to.equal(2_000);
    expect(pushedSequences(repoA)).to.deep.equal([1]);
  });
});
