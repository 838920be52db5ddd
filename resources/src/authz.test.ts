/**
 * Records owned by their creator's identity (resources/README.md#who-may-change-a-record): over mTLS, two workloads
 * of one trust domain, alice and mallory, and an admin, against the memory store and the etcd store (two replicas).
 */
import { create } from "@bufbuild/protobuf";
import {
  AllocateIpAddressRequestSchema,
  BulkReleaseIpAddressesRequestSchema,
  IpAddressManager,
  IpAddressRefSchema,
  IpAddressSchema,
  IpState,
  MacAddressManager,
  type Network,
  NetworkManager,
  NetworkSchema,
  PortManager,
  PortSchema,
  ResourceRefSchema,
  SubnetManager,
  SubnetSchema,
} from "@nsm-ts/api/resources";
import { type Channel, type Client, createClient, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { type Identity, loadIdentity } from "@nsm-ts/base/identity";
import { Code, StatusError } from "@nsm-ts/base/status";
import { type EtcdInstance, etcdAvailable, startEtcd } from "@nsm-ts/testing/etcd";
import { TestPki } from "@nsm-ts/testing/pki";
import { expect } from "chai";
import {
  createEtcdResourceStore,
  createMemoryResourceStore,
  createResourceManagers,
  type ResourceStore,
  registerResourceManagers,
  type WriteCaller,
} from "./index.js";

const TD = "spiffe://resources.nsm-ts";

async function rejection(p: Promise<unknown>): Promise<StatusError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "expected the call to fail").to.be.instanceOf(StatusError);
  return err as StatusError;
}

interface Workload {
  ips: Client<typeof IpAddressManager>;
  macs: Client<typeof MacAddressManager>;
  networks: Client<typeof NetworkManager>;
  subnets: Client<typeof SubnetManager>;
  ports: Client<typeof PortManager>;
}

const ipRef = (address: string, revision = "") => create(IpAddressRefSchema, { subnetId: "s1", address, revision });

for (const storeKind of ["memory", "etcd"] as const) {
  describe(`resources: records owned by their creator in certificate mode (${storeKind} store; alice, mallory, admin)`, function () {
    this.timeout(30_000);
    let pki: TestPki;
    const ids: Record<string, Identity> = {};
    let etcd: EtcdInstance | undefined;
    let servers: NsmServer[];
    let stores: ResourceStore[];
    let channels: Channel[];
    /** The URLs of the replicas (one for memory, two sharing one etcd prefix). */
    let urls: string[];

    before(async function () {
      if (storeKind === "etcd") {
        const check = etcdAvailable();
        if (!check.available) {
          console.warn(`    skipping the etcd cases: ${check.reason}`);
          this.skip();
        }
        etcd = await startEtcd({ tmpDir: "/dev/shm" });
      }
      pki = new TestPki("resources-authz-ca");
      for (const n of ["registry", "alice", "mallory", "admin"]) {
        ids[n] = await loadIdentity({ ...pki.leaf(n, { san: `URI:${TD}/${n}` }), caFile: pki.caFile });
      }
    });
    after(async () => {
      pki?.remove();
      await etcd?.stop();
    });

    const id = (n: string): Identity =>
      ids[n] ??
      (() => {
        throw new Error(`no identity ${n}`);
      })();

    /** Serves the managers with mTLS (or without, `secure: false`); with etcd, two replicas share one prefix. */
    const start = async (secure: boolean): Promise<void> => {
      const prefix = `/t/${Math.random().toString(36).slice(2)}/`;
      const replicas = storeKind === "etcd" ? 2 : 1;
      for (let i = 0; i < replicas; i++) {
        const store =
          storeKind === "etcd" && etcd !== undefined
            ? createEtcdResourceStore({ endpoints: etcd.endpoints, prefix })
            : createMemoryResourceStore();
        stores.push(store);
        const server = createServer(secure ? { tls: id("registry").tls } : {});
        servers.push(server);
        registerResourceManagers(server, { store, admins: [`${TD}/admin`] });
        urls.push(await server.listen("tcp://127.0.0.1:0"));
      }
    };
    /** The clients of workload `who` on replica `replica` (0 or 1; memory has one). */
    const as = (who: string, replica = 0, secure = true): Workload => {
      const url = urls[Math.min(replica, urls.length - 1)] ?? "";
      const ch = dial(url, secure ? { tls: id(who).tls } : {});
      channels.push(ch);
      return {
        ips: createClient(IpAddressManager, ch),
        macs: createClient(MacAddressManager, ch),
        networks: createClient(NetworkManager, ch),
        subnets: createClient(SubnetManager, ch),
        ports: createClient(PortManager, ch),
      };
    };
    /** alice's network n1 and subnet s1, and one address of hers. */
    const aliceSetup = async (alice: Workload): Promise<string> => {
      await alice.networks.createNetwork(create(NetworkSchema, { id: "n1", cidr: "198.51.100.0/24" }));
      await alice.subnets.createSubnet(create(SubnetSchema, { id: "s1", networkId: "n1", cidr: "198.51.100.0/24" }));
      const ip = await alice.ips.allocateIpAddress(create(AllocateIpAddressRequestSchema, { subnetId: "s1", owner: "nse-alice" }));
      return ip.address;
    };

    beforeEach(() => {
      servers = [];
      stores = [];
      channels = [];
      urls = [];
    });
    afterEach(async () => {
      for (const c of channels) c.close();
      await Promise.all(servers.map((s) => s.close({ graceMs: 100 })));
      await Promise.all(stores.map((s) => s.close()));
    });

    it("mallory cannot update or release alice's address (PermissionDenied naming the record and the rule), so she cannot take it", async () => {
      await start(true);
      const alice = as("alice");
      const mallory = as("mallory", 1);
      const address = await aliceSetup(alice);

      const upd = await rejection(mallory.ips.updateIpAddress(create(IpAddressSchema, { subnetId: "s1", address, owner: "nse-mallory" })));
      expect(upd.code).to.equal(Code.PermissionDenied);
      expect(upd.message).to.contain(`ip "s1/${address}"`).and.contain("record_creator").and.contain(`${TD}/alice`);
      const rel = await rejection(mallory.ips.releaseIpAddress(ipRef(address)));
      expect(rel.code).to.equal(Code.PermissionDenied);
      expect(rel.message).to.contain(`ip "s1/${address}"`).and.contain("record_creator");
      const bulk = await rejection(
        mallory.ips.bulkReleaseIpAddresses(create(BulkReleaseIpAddressesRequestSchema, { refs: [ipRef(address)] })),
      );
      expect(bulk.code).to.equal(Code.PermissionDenied);

      // The duplicate-address attack: with the release refused, the address stays alice's.
      const take = await rejection(mallory.ips.allocateIpAddress(create(AllocateIpAddressRequestSchema, { subnetId: "s1", address })));
      expect(take.code).to.equal(Code.AlreadyExists);
      const stored = await mallory.ips.getIpAddress(ipRef(address));
      expect(stored.owner).to.equal("nse-alice");
    });

    it("alice updates and releases her own address; the creator stays through her update", async () => {
      await start(true);
      const alice = as("alice");
      const address = await aliceSetup(alice);
      const upd = await as("alice", 1).ips.updateIpAddress(
        create(IpAddressSchema, { subnetId: "s1", address, owner: "nse-alice-2", state: IpState.ACTIVE }),
      );
      expect(upd.owner).to.equal("nse-alice-2");
      // Still alice's after the update: mallory is still refused, alice may release.
      expect((await rejection(as("mallory").ips.releaseIpAddress(ipRef(address)))).code).to.equal(Code.PermissionDenied);
      await alice.ips.releaseIpAddress(ipRef(address, upd.revision));
      expect((await rejection(alice.ips.getIpAddress(ipRef(address)))).code).to.equal(Code.NotFound);
    });

    it("an admin (the admins option) may update and release anyone's address", async () => {
      await start(true);
      const address = await aliceSetup(as("alice"));
      const admin = as("admin", 1);
      const upd = await admin.ips.updateIpAddress(create(IpAddressSchema, { subnetId: "s1", address, owner: "reclaimed" }));
      expect(upd.owner).to.equal("reclaimed");
      await admin.ips.releaseIpAddress(ipRef(address));
      // A release by the admin frees the address for anyone.
      const again = await as("mallory").ips.allocateIpAddress(create(AllocateIpAddressRequestSchema, { subnetId: "s1", address }));
      expect(again.address).to.equal(address);
    });

    it("the rule covers every kind: mallory cannot change or delete alice's network, subnet, port or MAC", async () => {
      await start(true);
      const alice = as("alice");
      const mallory = as("mallory", 1);
      await aliceSetup(alice);
      const port = await alice.ports.createPort(create(PortSchema, { id: "p1", networkId: "n1", owner: "nse-alice" }));
      const mac = await alice.macs.allocateMacAddress({ owner: "nse-alice" });
      const denied = async (what: string, p: Promise<unknown>): Promise<void> => {
        const err = await rejection(p);
        expect(err.code, what).to.equal(Code.PermissionDenied);
        expect(err.message, what).to.contain("record_creator");
      };
      await denied("updateNetwork", mallory.networks.updateNetwork(create(NetworkSchema, { id: "n1", name: "mine" })));
      await denied("updateSubnet", mallory.subnets.updateSubnet(create(SubnetSchema, { id: "s1", name: "mine" })));
      await denied("updatePort", mallory.ports.updatePort(create(PortSchema, { id: "p1", owner: "nse-mallory" })));
      await denied("deletePort", mallory.ports.deletePort(create(ResourceRefSchema, { id: "p1" })));
      await denied("updateMacAddress", mallory.macs.updateMacAddress({ address: mac.address, owner: "nse-mallory" }));
      await denied("releaseMacAddress", mallory.macs.releaseMacAddress({ address: mac.address }));
      // The port's own address and MAC, created with it, are alice's too.
      const portIp = port.fixedIps[0]?.ipAddress ?? "";
      await denied("release the port's address", mallory.ips.releaseIpAddress(ipRef(portIp)));
      // What mallory creates is hers: she may delete it, and alice may not.
      await mallory.networks.createNetwork(create(NetworkSchema, { id: "n2" }));
      await denied("alice deleteNetwork n2", alice.networks.deleteNetwork(create(ResourceRefSchema, { id: "n2" })));
      await mallory.networks.deleteNetwork(create(ResourceRefSchema, { id: "n2" }));
      // alice deletes her port with its address and MAC.
      await alice.ports.deletePort(create(ResourceRefSchema, { id: "p1" }));
    });

    it("insecure dev mode (no peer certificate): no identities, so anyone may change any record, as before", async () => {
      await start(false);
      const first = as("alice", 0, false);
      const address = await aliceSetup(first);
      const second = as("mallory", 1, false);
      await second.ips.updateIpAddress(create(IpAddressSchema, { subnetId: "s1", address, owner: "someone-else" }));
      await second.ips.releaseIpAddress(ipRef(address));
    });
  });
}

for (const storeKind of ["memory", "etcd"] as const) {
  describe(`resources: the ${storeKind} store keeps the creator beside the record`, function () {
    this.timeout(30_000);
    let etcd: EtcdInstance | undefined;
    let store: ResourceStore;
    const alice: WriteCaller = { spiffeId: `${TD}/alice`, admin: false };
    const mallory: WriteCaller = { spiffeId: `${TD}/mallory`, admin: false };

    before(async function () {
      if (storeKind === "etcd") {
        const check = etcdAvailable();
        if (!check.available) {
          console.warn(`    skipping the etcd cases: ${check.reason}`);
          this.skip();
        }
        etcd = await startEtcd({ tmpDir: "/dev/shm" });
      }
    });
    after(async () => {
      await etcd?.stop();
    });
    beforeEach(() => {
      const prefix = `/t/${Math.random().toString(36).slice(2)}/`;
      store = etcd === undefined ? createMemoryResourceStore() : createEtcdResourceStore({ endpoints: etcd.endpoints, prefix });
    });
    afterEach(async () => {
      await store?.close();
    });

    it("a create records the caller, an update keeps it, the message carries none of it; without a caller nothing is recorded", async () => {
      const m = createResourceManagers({ store });
      await m.createNetwork(create(NetworkSchema, { id: "n1" }), alice);
      await m.createNetwork(create(NetworkSchema, { id: "n2" }));
      expect((await store.get("network", "n1"))?.creator).to.equal(`${TD}/alice`);
      await m.updateNetwork(create(NetworkSchema, { id: "n1", name: "renamed" }), alice);
      const after = await store.get("network", "n1");
      expect(after?.creator).to.equal(`${TD}/alice`);
      expect((after?.value as Network | undefined)?.name).to.equal("renamed");
      expect(await m.get<Network>("network", create(ResourceRefSchema, { id: "n1" }))).to.not.have.property("creator");
      expect((await store.list("network")).map((r) => r.creator)).to.deep.equal([`${TD}/alice`, undefined]);

      // A record without a creator (dev mode, or written before creators were kept) stays open to anyone.
      expect((await store.get("network", "n2"))?.creator).to.equal(undefined);
      await m.updateNetwork(create(NetworkSchema, { id: "n2", name: "x" }), mallory);
      expect((await store.get("network", "n2"))?.creator).to.equal(undefined);

      const err = await rejection(m.delete("network", [create(ResourceRefSchema, { id: "n1" })], mallory));
      expect(err.code).to.equal(Code.PermissionDenied);
      expect(err.message).to.equal(
        `resources: policy record_creator denied: network "n1" was created by ${TD}/alice; only its creator or a resources admin may delete it, not ${TD}/mallory`,
      );
      await m.delete("network", [create(ResourceRefSchema, { id: "n1" })], { spiffeId: `${TD}/admin`, admin: true });
      expect(await store.get("network", "n1")).to.equal(undefined);
    });
  });
}
