import { type ConnectListener, createConnectHandler, listenConnect } from "@nsm-ts/base/connect";
import { createServer, type NsmServer } from "@nsm-ts/base/grpc";
import { type CurlStream, curlAvailable, curlJson, curlStream } from "@nsm-ts/testing/curl";
import { expect } from "chai";
import { createMemoryResourceStore, registerResourceManagers, resourceConnectRoutes } from "./index.js";

describe("resources: JSON over HTTP (Connect), driven by curl", function () {
  this.timeout(30_000);
  let server: NsmServer;
  let http: ConnectListener;
  const streams: CurlStream[] = [];

  before(function () {
    const c = curlAvailable();
    if (!c.available) {
      console.warn(`    skipping the curl cases: ${c.reason}`);
      this.skip();
    }
  });
  const start = async (anonymousWrites: boolean): Promise<string> => {
    server = createServer();
    const registered = registerResourceManagers(server, { store: createMemoryResourceStore() });
    http = await listenConnect("tcp://127.0.0.1:0", createConnectHandler(resourceConnectRoutes(registered, { anonymousWrites })));
    return `${http.url.replace("0.0.0.0", "127.0.0.1")}/nsmts.resources.v1.`;
  };
  afterEach(async () => {
    for (const s of streams.splice(0)) await s.close();
    await http?.close();
    await server?.close();
  });

  it("creates, reads and lists networks, subnets and ports; errors keep their code and name the field", async () => {
    const api = await start(true);
    let r = await curlJson(`${api}NetworkManager/CreateNetwork`, { id: "n1", cidr: "198.51.100.0/24" });
    expect(r.status).to.equal(200);
    expect(r.body).to.include({ id: "n1", cidr: "198.51.100.0/24" });
    expect(r.body.revision).to.match(/^\d+$/);
    r = await curlJson(`${api}SubnetManager/CreateSubnet`, { id: "s1", networkId: "n1", cidr: "198.51.100.0/28" });
    expect(r.status).to.equal(200);
    expect(r.body).to.include({ gatewayIp: "198.51.100.1", ipVersion: 4 });
    r = await curlJson(`${api}PortManager/CreatePort`, { id: "p1", networkId: "n1", owner: "nse-1" });
    expect(r.status).to.equal(200);
    expect(r.body.fixedIps).to.deep.equal([{ subnetId: "s1", ipAddress: "198.51.100.2" }]);
    expect(r.body.macAddress).to.match(/^fa:16:3e:/);
    r = await curlJson(`${api}PortManager/GetPort`, { id: "p1" });
    expect(r.body).to.include({ id: "p1", owner: "nse-1" });
    r = await curlJson(`${api}IpAddressManager/ListIpAddresses`, { subnetId: "s1" });
    expect((r.body.items as Array<{ address: string }>).map((i) => i.address)).to.deep.equal(["198.51.100.2"]);
    // Errors: Connect's JSON error with the gRPC code's name, and the HTTP status it maps to.
    r = await curlJson(`${api}PortManager/GetPort`, { id: "nope" });
    expect(r.status).to.equal(404);
    expect(r.body.code).to.equal("not_found");
    r = await curlJson(`${api}SubnetManager/CreateSubnet`, { id: "s2", networkId: "n1", cidr: "198.51.100.300/24" });
    expect(r.status).to.equal(400);
    expect(r.body).to.include({ code: "invalid_argument" });
    expect(r.body.message).to.match(/cidr/);
    r = await curlJson(`${api}NetworkManager/DeleteNetwork`, { id: "n1" });
    expect(r.body.code).to.equal("failed_precondition");
  });

  it("streams WatchPorts to curl: SYNCED, then the ports created over JSON", async () => {
    const api = await start(true);
    await curlJson(`${api}NetworkManager/CreateNetwork`, { id: "n1" });
    await curlJson(`${api}SubnetManager/CreateSubnet`, { id: "s1", networkId: "n1", cidr: "198.51.100.0/28" });
    const w = curlStream(`${api}PortManager/WatchPorts`, {});
    streams.push(w);
    expect(await w.next()).to.include({ type: "WATCH_EVENT_TYPE_SYNCED" });
    await curlJson(`${api}PortManager/CreatePort`, { id: "p1", networkId: "n1" });
    const ev = await w.next();
    expect(ev.type).to.equal("WATCH_EVENT_TYPE_PUT");
    expect(ev.object).to.include({ id: "p1", networkId: "n1" });
    expect(ev.revision).to.equal((ev.object as { revision: string }).revision);
  });

  it("without anonymous writes (a gRPC side with certificates) it serves reads and refuses writes", async () => {
    const api = await start(false);
    let r = await curlJson(`${api}NetworkManager/CreateNetwork`, { id: "n1" });
    expect(r.status).to.equal(403);
    expect(r.body.code).to.equal("permission_denied");
    expect(r.body.message).to.match(/no identity/);
    r = await curlJson(`${api}NetworkManager/ListNetworks`, {});
    expect(r.status).to.equal(200);
    expect(r.body).to.deep.equal({});
  });
});
