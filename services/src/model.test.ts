import { BackendHealth, BalancingPolicy, Protocol } from "@nsm-ts/api/services";
import { Code } from "@nsm-ts/base/status";
import { expectStatus } from "@nsm-ts/testing/grpc";
import { expect } from "chai";
import { backendsOf, be, fe, lr, ref, resolved, svc } from "./model.fixture.js";
import { ServiceModel } from "./model.js";

const http = [{ name: "", port: 80, protocol: Protocol.TCP }];

describe("services model", () => {
  it("keeps orphan backends until their service arrives, then resolves them", async () => {
    const m = new ServiceModel();
    await m.writeBackend(be({ service: "web", address: "169.254.1.1", node: "n1" }), "create");
    expect(resolved(m, "web"), "a service nobody describes does not resolve").to.equal(undefined);
    expect(m.serviceNames(m.readTxn())).to.deep.equal(["web"]);
    await m.writeService(svc({ name: "web", ports: http }), "create");
    await m.createFrontend(fe({ service: "web", policy: BalancingPolicy.ROUND_ROBIN, address: "169.254.100.1" }));
    const r = resolved(m, "web");
    expect(backendsOf(r)).to.deep.equal(["169.254.1.1:80@api"]);
    expect(r?.frontends.map((f) => `${f.address}:${f.port}`)).to.deep.equal(["169.254.100.1:80"]);
    // Deleting the service orphans the backend again; deleting that too forgets the service.
    await m.deleteService(ref({ service: "web", source: "" }));
    expect(resolved(m, "web")).to.equal(undefined);
    await m.deleteBackend(ref({ service: "web", source: "api", name: "169.254.1.1" }));
    expect(m.serviceNames(m.readTxn()), "its frontend is still stored").to.deep.equal(["web"]);
    await m.deleteFrontend(ref({ service: "web", policy: BalancingPolicy.ROUND_ROBIN }));
    expect(m.serviceNames(m.readTxn())).to.deep.equal([]);
  });

  it("removing a source removes only that source's rows", async () => {
    const m = new ServiceModel();
    await m.writeService(svc({ name: "web", ports: http }), "create");
    await m.writeBackend(be({ service: "web", address: "169.254.1.1" }), "create");
    await m.writeBackend(be({ service: "web", source: "registry", name: "nse-a", address: "169.254.1.2" }), "put");
    await m.writeBackend(be({ service: "web", source: "registry", name: "nse-b", address: "169.254.1.3" }), "put");
    await m.writeBackend(be({ service: "db", source: "registry", name: "nse-c", address: "169.254.2.1" }), "put");
    expect(backendsOf(resolved(m, "web"))).to.have.length(3);
    expect(await m.removeSource("registry", "web")).to.equal(2);
    expect(backendsOf(resolved(m, "web"))).to.deep.equal(["169.254.1.1:80@api"]);
    expect(m.rowsOf(m.readTxn(), "db").backends, "another service's rows of the source stay").to.have.length(1);
    await m.removeSource("registry");
    expect(m.rowsOf(m.readTxn(), "db").backends).to.have.length(0);
  });

  it("merges sources field by field, the higher priority winning", async () => {
    const m = new ServiceModel();
    await m.writeService(
      svc({ name: "web", source: "remote", ports: http, labels: { tier: "remote", team: "x" }, sessionAffinitySeconds: 30 }),
      "put",
    );
    await m.writeService(svc({ name: "web", source: "registry", ports: [{ name: "", port: 8080 }], labels: { tier: "registry" } }), "put");
    await m.writeService(svc({ name: "web", source: "api", labels: { owner: "ops" } }), "put");
    const r = resolved(m, "web");
    expect(
      r?.ports.map((p) => p.port),
      "api sets no ports: the registry's win over the remote's",
    ).to.deep.equal([8080]);
    expect(r?.labels).to.deep.equal({ tier: "registry", team: "x", owner: "ops" });
    expect(r?.sessionAffinitySeconds, "only the remote sets it").to.equal(30);

    // One instance described by two sources: one merged backend carrying the winning source.
    await m.writeBackend(
      be({ service: "web", source: "remote", name: "r1", address: "169.254.1.1", zone: "z-remote", weight: 5, node: "n9" }),
      "put",
    );
    await m.writeBackend(
      be({ service: "web", source: "registry", name: "nse-1", address: "169.254.1.1", zone: "z-local", health: BackendHealth.DRAINING }),
      "put",
    );
    const [b] = resolved(m, "web")?.backends ?? [];
    expect(b).to.include({ source: "registry", zone: "z-local", weight: 5, node: "n9", health: BackendHealth.DRAINING, port: 8080 });
    // The higher source leaves: the lower one's description applies again.
    await m.removeSource("registry");
    expect(resolved(m, "web")?.ports.map((p) => p.port)).to.deep.equal([80]);
    expect(resolved(m, "web")?.backends[0]).to.include({ source: "remote", zone: "z-remote", port: 80 });
  });

  it("applies a local redirect whether it arrives before or after the service, and removing it restores the service", async () => {
    const m = new ServiceModel();
    // Before: the override exists before anything else.
    await m.writeLocalRedirect(lr({ service: "web", backendLabels: {} }), "create");
    expect(resolved(m, "web", "n1")).to.equal(undefined);
    await m.writeService(svc({ name: "web", ports: http }), "create");
    await m.writeBackend(be({ service: "web", address: "169.254.1.1", node: "n1" }), "create");
    await m.writeBackend(be({ service: "web", address: "169.254.1.2", node: "n2" }), "create");
    expect(backendsOf(resolved(m, "web", "n1"))).to.deep.equal(["169.254.1.1:80@api"]);
    expect(resolved(m, "web", "n1")?.localRedirect).to.equal(true);
    expect(backendsOf(resolved(m, "web", "n3")), "a node without a local instance balances over all").to.have.length(2);
    expect(resolved(m, "web", "n3")?.localRedirect).to.equal(false);

    await m.deleteLocalRedirect(ref({ service: "web" }));
    const restored = resolved(m, "web", "n1");
    expect(backendsOf(restored)).to.deep.equal(["169.254.1.1:80@api", "169.254.1.2:80@api"]);
    expect(restored?.localRedirect).to.equal(false);

    // After: the override arrives on an existing service, with a label selector, and goes again.
    await m.writeBackend(be({ service: "web", address: "169.254.1.3", node: "n1", labels: { cache: "yes" } }), "create");
    const before = resolved(m, "web", "n1");
    await m.writeLocalRedirect(lr({ service: "web", backendLabels: { cache: "yes" } }), "create");
    expect(backendsOf(resolved(m, "web", "n1"))).to.deep.equal(["169.254.1.3:80@api"]);
    await m.deleteLocalRedirect(ref({ service: "web" }));
    const after = resolved(m, "web", "n1");
    expect({ ...after, revision: "" }).to.deep.equal({ ...before, revision: "" });
    expect(Number(after?.revision ?? 0)).to.be.greaterThan(Number(before?.revision ?? 0));
  });

  it("compare-and-set: stale revisions abort, duplicates and missing rows are reported", async () => {
    const m = new ServiceModel();
    const v1 = await m.writeService(svc({ name: "web", ports: http }), "create");
    await expectStatus(m.writeService(svc({ name: "web" }), "create"), Code.AlreadyExists);
    const v2 = await m.writeService(svc({ name: "web", ports: http, labels: { a: "1" }, revision: v1.revision }), "update");
    expect(Number(v2.revision)).to.be.greaterThan(Number(v1.revision));
    const stale = await expectStatus(m.writeService(svc({ name: "web", revision: v1.revision }), "update"), Code.Aborted);
    expect(stale.message).to.contain("revision");
    await expectStatus(m.deleteService(ref({ service: "web", revision: v1.revision })), Code.Aborted);
    await expectStatus(m.writeService(svc({ name: "nope" }), "update"), Code.NotFound);
    const b = await m.writeBackend(be({ service: "web", address: "169.254.1.1" }), "create");
    await m.writeBackend(be({ ...b, weight: 3 }), "update");
    await expectStatus(m.writeBackend(be({ ...b, weight: 4 }), "update"), Code.Aborted);
    await expectStatus(m.deleteBackend(ref({ service: "web", source: "api", name: b.name, revision: b.revision })), Code.Aborted);
    await m.deleteService(ref({ service: "web", revision: v2.revision }));
  });

  it("rejects bad input with InvalidArgument naming the field", async () => {
    const m = new ServiceModel();
    const cases: Array<[Promise<unknown>, string]> = [
      [m.writeService(svc({ name: "" }), "create"), "name"],
      [m.writeService(svc({ name: "web", source: "k8s" }), "create"), "source"],
      [m.writeService(svc({ name: "web", ports: [{ name: "", port: 70000 }] }), "create"), "ports[0].port"],
      [
        m.writeService(
          svc({
            name: "web",
            ports: [
              { name: "a", port: 80 },
              { name: "a", port: 81 },
            ],
          }),
          "create",
        ),
        "ports[1]",
      ],
      [m.writeBackend(be({ service: "web", address: "300.1.1.1" }), "create"), "address"],
      [m.writeBackend(be({ service: "web", address: "169.254.1.1", ports: [{ name: "", port: 0 }] }), "create"), "ports[0].port"],
      [m.writeBackend(be({ service: "web", address: "169.254.1.1", weight: 70000 }), "create"), "weight"],
      [m.createFrontend(fe({ service: "web", policy: BalancingPolicy.UNSPECIFIED, address: "169.254.100.1" })), "policy"],
      [m.createFrontend(fe({ service: "web", policy: BalancingPolicy.CLOSEST })), "address"],
      [m.writeService(svc({ name: "web", revision: "x1" }), "put"), "revision"],
    ];
    for (const [p, field] of cases) {
      const err = await expectStatus(p, Code.InvalidArgument);
      expect(err.message).to.contain(`${field}:`);
    }
  });

  it("expands backends per service port by name and keeps a ServiceIP unique", async () => {
    const m = new ServiceModel();
    const ports = [
      { name: "http", port: 80, protocol: Protocol.TCP },
      { name: "dns", port: 53, protocol: Protocol.UDP },
    ];
    await m.writeService(svc({ name: "web", ports }), "create");
    await m.writeBackend(be({ service: "web", address: "169.254.1.1", ports: [{ name: "http", port: 8080 }] }), "create");
    await m.writeBackend(be({ service: "web", address: "169.254.1.2" }), "create");
    const r = resolved(m, "web");
    expect((r?.backends ?? []).map((b) => `${b.portName}:${b.address}:${b.port}/${b.protocol}`).sort()).to.deep.equal([
      `dns:169.254.1.2:53/${Protocol.UDP}`,
      `http:169.254.1.1:8080/${Protocol.TCP}`,
      `http:169.254.1.2:80/${Protocol.TCP}`,
    ]);
    await m.createFrontend(fe({ service: "web", policy: BalancingPolicy.ROUND_ROBIN, address: "169.254.100.1" }));
    await expectStatus(
      m.createFrontend(fe({ service: "other", policy: BalancingPolicy.ROUND_ROBIN, address: "169.254.100.1" })),
      Code.AlreadyExists,
    );
    expect(resolved(m, "web")?.frontends).to.have.length(2);
  });
});
