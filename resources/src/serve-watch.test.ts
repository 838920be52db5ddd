import { create } from "@bufbuild/protobuf";
import {
  AllocateIpAddressRequestSchema,
  IpAddressManager,
  NetworkManager,
  NetworkSchema,
  ResourceRefSchema,
  SubnetManager,
  SubnetSchema,
  WatchEventType,
} from "@nsm-ts/api/resources";
import { type Channel, createClient, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { expect } from "chai";
import { createMemoryResourceStore, registerResourceManagers } from "./index.js";

describe("resources: Watch RPCs", () => {
  let server: NsmServer;
  let ch: Channel;
  const calls: AbortController[] = [];

  beforeEach(async () => {
    server = createServer();
    registerResourceManagers(server, { store: createMemoryResourceStore() });
    ch = dial(await server.listen("tcp://127.0.0.1:0"));
  });
  afterEach(async () => {
    for (const c of calls.splice(0)) c.abort();
    ch.close();
    await server.close();
  });
  const open = <T>(start: (signal: AbortSignal) => AsyncIterable<T>): AsyncIterator<T> => {
    const ctl = new AbortController();
    calls.push(ctl);
    return start(ctl.signal)[Symbol.asyncIterator]();
  };
  const next = async <T>(it: AsyncIterator<T>): Promise<T> => {
    const r = await it.next();
    if (r.done) throw new Error("stream ended");
    return r.value;
  };

  it("WatchNetworks: current objects, SYNCED, live changes; a new call resumes after the last revision seen", async () => {
    const nets = createClient(NetworkManager, ch);
    await nets.createNetwork(create(NetworkSchema, { id: "n1", name: "a" }));
    const first = open((signal) => nets.watchNetworks({}, { signal }));
    const e1 = await next(first);
    expect([e1.type, e1.object?.id, e1.object?.name]).to.deep.equal([WatchEventType.PUT, "n1", "a"]);
    expect((await next(first)).type).to.equal(WatchEventType.SYNCED);
    await nets.createNetwork(create(NetworkSchema, { id: "n2", name: "b" }));
    const e3 = await next(first);
    expect([e3.type, e3.object?.id]).to.deep.equal([WatchEventType.PUT, "n2"]);
    expect(e3.revision).to.equal(e3.object?.revision);
    // The watcher goes away; changes happen; a new call from the last revision it saw misses none.
    await first.return?.();
    await nets.deleteNetwork(create(ResourceRefSchema, { id: "n1" }));
    await nets.updateNetwork(create(NetworkSchema, { id: "n2", name: "b2" }));
    const again = open((signal) => nets.watchNetworks({ fromRevision: e3.revision }, { signal }));
    const d = await next(again);
    expect([d.type, d.object?.id, d.object?.name]).to.deep.equal([WatchEventType.DELETE, "n1", "a"]);
    const u = await next(again);
    expect([u.type, u.object?.id, u.object?.name]).to.deep.equal([WatchEventType.PUT, "n2", "b2"]);
  });

  it("WatchIpAddresses: allocations and releases, deletes naming the address", async () => {
    await createClient(NetworkManager, ch).createNetwork(create(NetworkSchema, { id: "n1" }));
    await createClient(SubnetManager, ch).createSubnet(create(SubnetSchema, { id: "s1", networkId: "n1", cidr: "198.51.100.0/29" }));
    const ips = createClient(IpAddressManager, ch);
    const w = open((signal) => ips.watchIpAddresses({}, { signal }));
    expect((await next(w)).type).to.equal(WatchEventType.SYNCED);
    const ip = await ips.allocateIpAddress(create(AllocateIpAddressRequestSchema, { subnetId: "s1" }));
    const put = await next(w);
    expect([put.type, put.object?.subnetId, put.object?.address]).to.deep.equal([WatchEventType.PUT, "s1", ip.address]);
    await ips.releaseIpAddress({ subnetId: "s1", address: ip.address });
    const gone = await next(w);
    expect([gone.type, gone.object?.address]).to.deep.equal([WatchEventType.DELETE, ip.address]);
  });
});
