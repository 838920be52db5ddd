import { Protocol, type ResolvedServiceEvent } from "@nsm-ts/api/services";
import { expect } from "chai";
import { be, lr, ref, svc } from "./model.fixture.js";
import { ServiceModel } from "./model.js";
import { watchResolved } from "./watch.js";

describe("services resolved watch", () => {
  it("lists, marks synced once, then sends each change of a service as one event, deletions included", async () => {
    const m = new ServiceModel();
    const ac = new AbortController();
    const it = watchResolved(m, { node: "n1" }, ac.signal);
    const next = async (): Promise<ResolvedServiceEvent> => (await it.next()).value as ResolvedServiceEvent;
    try {
      expect(await next()).to.deep.include({ synced: true });
      await m.writeBackend(be({ service: "web", address: "169.254.1.1", node: "n1" }), "create");
      await m.writeBackend(be({ service: "web", address: "169.254.1.2", node: "n2" }), "create");
      await m.writeService(svc({ name: "web", ports: [{ port: 80, protocol: Protocol.UDP }] }), "create");
      const up = await next();
      expect(up?.synced, "no second synced marker").to.equal(false);
      expect(up?.service?.backends.map((b) => b.address)).to.deep.equal(["169.254.1.1", "169.254.1.2"]);
      await m.writeLocalRedirect(lr({ service: "web" }), "create");
      const redirected = await next();
      expect(redirected?.service?.localRedirect).to.equal(true);
      expect(redirected?.service?.backends.map((b) => b.address)).to.deep.equal(["169.254.1.1"]);
      expect(Number(redirected?.service?.revision)).to.be.greaterThan(Number(up?.service?.revision));
      await m.deleteService(ref({ service: "web" }));
      expect(await next()).to.deep.include({ deleted: true });
    } finally {
      ac.abort();
      await it.return(undefined);
    }
  });

  it("with skip_existing sends only changes and no synced marker", async () => {
    const m = new ServiceModel();
    await m.writeService(svc({ name: "old", ports: [{ port: 80 }] }), "create");
    const ac = new AbortController();
    const it = watchResolved(m, { skipExisting: true }, ac.signal);
    try {
      const pending = it.next();
      await m.writeService(svc({ name: "new" }), "create");
      const ev = (await pending).value as ResolvedServiceEvent;
      expect(ev?.service?.name).to.equal("new");
      expect(ev?.service?.frontends, "no ServiceIP yet").to.deep.equal([]);
    } finally {
      ac.abort();
      await it.return(undefined);
    }
  });
});
