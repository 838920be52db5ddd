import { Protocol, type ResolvedServiceEvent } from "@nsm-ts/api/services";
import { MockClock } from "@nsm-ts/base/clock";
import { Code } from "@nsm-ts/base/status";
import { createMemoryResourceStore, createResourceManagers } from "@nsm-ts/resources";
import { expectStatus } from "@nsm-ts/testing/grpc";
import { expect } from "chai";
import { createResourceAllocator } from "./allocator.js";
import { be, ref, svc } from "./model.fixture.js";
import { ServiceModel } from "./model.js";
import { watchResolved } from "./watch.js";

const addresses = (ev: ResolvedServiceEvent | undefined): string[] => (ev?.service?.backends ?? []).map((b) => b.address).sort();

describe("services backend leases", () => {
  let clock: MockClock;
  let m: ServiceModel;
  let ac: AbortController;
  let released: string[];
  let events: AsyncGenerator<ResolvedServiceEvent>;
  const next = async (): Promise<ResolvedServiceEvent> => (await events.next()).value as ResolvedServiceEvent;
  const leased = ref({ service: "web", source: "api", name: "pod-a" });

  beforeEach(async () => {
    clock = new MockClock();
    const allocator = createResourceAllocator(createResourceManagers({ store: createMemoryResourceStore() }), {
      policies: {},
      instance: "169.254.210.0/24",
    });
    await allocator.init();
    released = [];
    const release = (range: string, address: string): Promise<void> => {
      released.push(address);
      return allocator.release(range, address);
    };
    m = new ServiceModel({ clock, allocator: { ...allocator, release } });
    await m.writeService(svc({ name: "web", ports: [{ port: 80, protocol: Protocol.TCP }] }), "create");
    await m.writeBackend(be({ service: "web", name: "pod-a", address: "169.254.1.1", leaseSeconds: 3 }), "create");
    await m.writeBackend(be({ service: "web", name: "static", address: "169.254.1.2" }), "create");
    ac = new AbortController();
    events = watchResolved(m, { service: "web", skipExisting: true }, ac.signal);
  });
  afterEach(async () => {
    ac.abort();
    await events.return(undefined);
    m.close();
    expect(clock.pending(), "the lease timer is stopped").to.equal(0);
  });

  it("deletes a leased backend whose lease ran out, as a model write the resolved watchers see", async () => {
    const instanceIp = m.read(m.tables.backends, m.readTxn(), "web/api/pod-a")?.instanceIp;
    const pending = next();
    await clock.advance(2999);
    expect(m.rowsOf(m.readTxn(), "web").backends, "before the lease ends").to.have.length(2);
    await clock.advance(1);
    const ev = await pending;
    expect(addresses(ev), "the unleased row stays").to.deep.equal(["169.254.1.2"]);
    expect(m.read(m.tables.backends, m.readTxn(), "web/api/pod-a")).to.equal(undefined);
    await expectStatus(m.renewBackend(leased), Code.NotFound);
    expect(released, "its instance IP went back to the range").to.deep.equal([instanceIp]);
  });

  it("keeps a renewed backend without a new revision or a resolved event, and expires it once renewals stop", async () => {
    const revision = m.resolve(m.readTxn(), "web", "")?.revision;
    const rowRevision = m.read(m.tables.backends, m.readTxn(), "web/api/pod-a")?.revision;
    const pending = next();
    for (let i = 0; i < 10; i++) {
      await clock.advance(2000);
      const b = await m.renewBackend(leased);
      expect(b.revision, "a renewal writes nothing").to.equal(rowRevision);
    }
    expect(m.resolve(m.readTxn(), "web", "")?.revision, "the service's revision stays").to.equal(revision);
    expect(m.tables.db.revision().toString(), "no write at all").to.equal(revision);
    // The first resolved event the watcher gets is the expiry, 3 s after the last renewal: the renewals sent none.
    await clock.advance(2999);
    expect(m.rowsOf(m.readTxn(), "web").backends).to.have.length(2);
    await clock.advance(1);
    expect(addresses(await pending)).to.deep.equal(["169.254.1.2"]);
  });

  it("restarts the lease on every write, stops it on a write without one, and checks renewals and the bound", async () => {
    await clock.advance(2000);
    await m.writeBackend(be({ service: "web", name: "pod-a", address: "169.254.1.1", leaseSeconds: 3 }), "update");
    await clock.advance(2000);
    expect(m.rowsOf(m.readTxn(), "web").backends, "the update restarted the lease").to.have.length(2);
    await m.writeBackend(be({ service: "web", name: "pod-a", address: "169.254.1.1" }), "update");
    await clock.advance(60_000);
    expect(m.rowsOf(m.readTxn(), "web").backends, "without a lease the row stays").to.have.length(2);
    const err = await expectStatus(m.renewBackend(leased), Code.FailedPrecondition);
    expect(err.message).to.contain("lease_seconds");
    await expectStatus(m.renewBackend(ref({ service: "web", source: "api", name: "nobody" })), Code.NotFound);
    await expectStatus(m.renewBackend(ref({ service: "web", source: "api", name: "static", revision: "1" })), Code.Aborted);
    const big = await expectStatus(
      m.writeBackend(be({ service: "web", name: "x", address: "169.254.1.9", leaseSeconds: 86_401 }), "create"),
      Code.InvalidArgument,
    );
    expect(big.message).to.contain("lease_seconds");
    // A deleted row and a row re-created without a lease under the same name are not expired by the old lease.
    await m.writeBackend(be({ service: "web", name: "pod-c", address: "169.254.1.4", leaseSeconds: 1 }), "create");
    await m.deleteBackend(ref({ service: "web", source: "api", name: "pod-c" }));
    await m.writeBackend(be({ service: "web", name: "pod-c", address: "169.254.1.4" }), "create");
    await clock.advance(5000);
    expect(m.read(m.tables.backends, m.readTxn(), "web/api/pod-c")).to.not.equal(undefined);
  });
});
