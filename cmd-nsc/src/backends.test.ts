import { once } from "node:events";
import { type AddressInfo, createServer as createTcpServer, type Server } from "node:net";
import { BackendHealth } from "@nsm-ts/api/services";
import { MockClock } from "@nsm-ts/base/clock";
import { type Channel, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { Code } from "@nsm-ts/base/status";
import { registerServices, ServiceModel, servicesClient } from "@nsm-ts/services";
import { expectStatus } from "@nsm-ts/testing/grpc";
import { expect } from "chai";
import { type BackendRoleOptions, leaseSecondsOf, parseServiceBackends, startBackendRole } from "./backends.js";

describe("cmd-nsc backend role (NSM_SERVICE_BACKENDS)", () => {
  it("parses <service>:<port>[/tcp] lists and names what is wrong", () => {
    expect(parseServiceBackends("web:8080, dns:5353/tcp")).to.deep.equal([
      { service: "web", port: 8080 },
      { service: "dns", port: 5353 },
    ]);
    expect(parseServiceBackends("")).to.deep.equal([]);
    expect(() => parseServiceBackends("web")).to.throw(/<service>:<port>/);
    expect(() => parseServiceBackends("web:0")).to.throw(/1\.\.65535/);
    expect(() => parseServiceBackends("dns:53/udp")).to.throw(/only tcp/);
    expect(() => parseServiceBackends("web:1,web:2")).to.throw(/twice/);
  });

  it("leases for 3 probe rounds (interval + timeout), at least 5 s, or NSM_SERVICE_LEASE", () => {
    expect(leaseSecondsOf(undefined, 1000, 1000)).to.equal(6);
    expect(leaseSecondsOf(undefined, 100, 100)).to.equal(5);
    expect(leaseSecondsOf(undefined, 2000, 500)).to.equal(8);
    expect(leaseSecondsOf(3000, 100, 100)).to.equal(3);
  });

  describe("against a services API served in-process", () => {
    let server: NsmServer;
    let channel: Channel;
    let tcp: Server | undefined;
    let model: ServiceModel;
    /** The registry's clock: it moves with the sidecar's, except while the sidecar is "dead". */
    let registryClock: MockClock;

    const listen = async (port = 0): Promise<number> => {
      tcp = createTcpServer((s) => s.end());
      tcp.listen(port, "127.0.0.1");
      await once(tcp, "listening");
      return (tcp.address() as AddressInfo).port;
    };
    const closeTcp = async (): Promise<void> => {
      const t = tcp;
      tcp = undefined;
      if (t) await new Promise<void>((r) => t.close(() => r()));
    };

    /**
     * Starts the role for one `web` backend on its own mock clock, probing every 200 ms (timeout 100 ms, UNHEALTHY
     * after 2 failures). `tick` moves `clocks` and then the role's clock one interval and waits for that round.
     */
    const startStepped = (name: string, port: number, extra: Partial<BackendRoleOptions>, clocks: MockClock[] = []) => {
      const api = servicesClient(channel).backends;
      const clock = new MockClock();
      const rounds: Array<() => void> = [];
      const nextRound = (): Promise<void> => new Promise<void>((r) => rounds.push(r));
      const role = startBackendRole({
        api,
        backends: [{ service: "web", port }],
        name,
        intervalMs: 200,
        timeoutMs: 100,
        failures: 2,
        clock,
        onRound: () => {
          for (const r of rounds.splice(0)) r();
        },
        ...extra,
      });
      const tick = async (): Promise<void> => {
        const done = nextRound();
        for (const c of [...clocks, clock]) await c.advance(200);
        await done;
      };
      return { api, clock, role, nextRound, tick, get: () => api.getBackend({ service: "web", source: "api", name }) };
    };

    beforeEach(async () => {
      server = createServer();
      registryClock = new MockClock();
      model = new ServiceModel({ clock: registryClock });
      registerServices(server, model);
      channel = dial(await server.listen("tcp://127.0.0.1:0"));
    });
    afterEach(async () => {
      await closeTcp();
      channel.close();
      await server.close({ graceMs: 0 });
      model.close();
      expect(registryClock.pending()).to.equal(0);
    });

    it("registers on the address, goes UNHEALTHY after the failure threshold and HEALTHY again, follows a new address, deletes on close", async () => {
      const port = await listen();
      const { api, clock, role, nextRound, tick, get } = startStepped("nsc-b1", port, { node: "node-1", zone: "zone-a" });
      try {
        // A row left by an earlier run of this sidecar (SIGKILLed with its pod): nothing happens before the
        // address is known, then it is replaced.
        await api.createBackend({ service: "web", name: "nsc-b1", address: "127.0.0.9", health: BackendHealth.HEALTHY });
        expect((await api.listBackends({ service: "web" })).items.map((x) => x.address)).to.deep.equal(["127.0.0.9"]);
        const done = nextRound();
        role.setAddress("127.0.0.1");
        await done;
        expect((await api.listBackends({ service: "web" })).items).to.have.length(1);
        let b = await get();
        expect([b.address, b.node, b.zone, b.health, b.ports[0]?.port]).to.deep.equal([
          "127.0.0.1",
          "node-1",
          "zone-a",
          BackendHealth.HEALTHY,
          port,
        ]);

        await closeTcp();
        await tick();
        expect((await get()).health, "one failure is below the threshold").to.equal(BackendHealth.HEALTHY);
        await tick();
        expect((await get()).health, "two failures").to.equal(BackendHealth.UNHEALTHY);

        await listen(port);
        await tick();
        expect((await get()).health).to.equal(BackendHealth.HEALTHY);

        // A heal with a new address rewrites the row on the next probe (127.0.0.2: nothing listens there).
        role.setAddress("127.0.0.2");
        await tick();
        b = await get();
        expect([b.address, b.health]).to.deep.equal(["127.0.0.2", BackendHealth.HEALTHY]);
        await tick();
        expect((await get()).health).to.equal(BackendHealth.UNHEALTHY);
      } finally {
        await role.close();
      }
      expect((await api.listBackends({ service: "web" })).items).to.deep.equal([]);
      expect(clock.pending()).to.equal(0);
    });

    it("renews the lease with each probe without a new revision, recreates a row that expired, and its rows go when the sidecar dies", async () => {
      const port = await listen();
      const { clock, role, nextRound, tick, get } = startStepped("nsc-b2", port, { leaseSeconds: 1 }, [registryClock]);
      try {
        const done = nextRound();
        role.setAddress("127.0.0.1");
        await done;
        const first = await get();
        expect([first.leaseSeconds, first.health]).to.deep.equal([1, BackendHealth.HEALTHY]);
        const revision = model.tables.db.revision();
        // 2 s of probes, twice the lease: the row stays, and nothing was written.
        for (let i = 0; i < 10; i++) await tick();
        expect((await get()).revision).to.equal(first.revision);
        expect(model.tables.db.revision(), "renewals write nothing (no revision for the data planes)").to.equal(revision);

        // The lease ran out while the registry could not be reached: the next renewal finds no row and creates it.
        await registryClock.advance(1000);
        await expectStatus(get(), Code.NotFound);
        await tick();
        expect((await get()).address).to.equal("127.0.0.1");

        // The sidecar is SIGKILLed with its pod: its clock stops (no probe, no renewal, no delete), the
        // registry's goes on, and the row goes once the lease runs out.
        await registryClock.advance(999);
        expect((await get()).address).to.equal("127.0.0.1");
        await registryClock.advance(1);
        await expectStatus(get(), Code.NotFound);
      } finally {
        await role.close();
      }
      expect(clock.pending()).to.equal(0);
    });
  });
});
