/**
 * cmd-registry's Connect listener as a user meets it: the process started with NSM_CONNECT_LISTEN_ON, driven by
 * the real curl with the JSON of the README's examples.
 */

import { buildQuery, exchangeUdp } from "@nsm-ts/sdk/dns";
import { type CurlStream, curlAvailable, curlJson, curlStream } from "@nsm-ts/testing/curl";
import { expect } from "chai";
import { freePort, running, startRegistry, stopAll } from "./process.fixture.js";

describe("cmd-registry: resource managers as JSON over HTTP (curl)", function () {
  this.timeout(30_000);
  const streams: CurlStream[] = [];
  before(function () {
    const c = curlAvailable();
    if (!c.available) {
      console.warn(`    skipping the curl cases: ${c.reason}`);
      this.skip();
    }
  });
  afterEach(async () => {
    for (const s of streams.splice(0)) await s.close();
    await stopAll();
    expect(running()).to.equal(0);
  });

  it("serves the README's curl examples on NSM_CONNECT_LISTEN_ON and streams a watch", async () => {
    const port = await freePort();
    const reg = await startRegistry({ NSM_CONNECT_LISTEN_ON: `tcp://127.0.0.1:${port}` });
    expect(reg.output()).to.include(`"connectUrl":"http://127.0.0.1:${port}"`);
    const api = `http://127.0.0.1:${port}/nsmts.resources.v1.`;
    const watch = curlStream(`${api}PortManager/WatchPorts`, {});
    streams.push(watch);
    // An empty store: revision 0, which JSON leaves out as the default.
    expect(await watch.next()).to.deep.equal({ type: "WATCH_EVENT_TYPE_SYNCED" });

    expect((await curlJson(`${api}NetworkManager/CreateNetwork`, { id: "net1", cidr: "198.51.100.0/24" })).status).to.equal(200);
    const subnet = await curlJson(`${api}SubnetManager/CreateSubnet`, { id: "sub1", networkId: "net1", cidr: "198.51.100.0/26" });
    expect(subnet.body).to.include({ gatewayIp: "198.51.100.1" });
    const port1 = await curlJson(`${api}PortManager/CreatePort`, { id: "port1", networkId: "net1", owner: "nse-a" });
    expect(port1.body.fixedIps).to.deep.equal([{ subnetId: "sub1", ipAddress: "198.51.100.2" }]);
    const ev = await watch.next();
    expect(ev).to.include({ type: "WATCH_EVENT_TYPE_PUT" });
    expect(ev.object).to.include({ id: "port1", owner: "nse-a" });

    const missing = await curlJson(`${api}PortManager/GetPort`, { id: "port2" });
    expect([missing.status, missing.body.code]).to.deep.equal([404, "not_found"]);
    const del = await curlJson(`${api}PortManager/DeletePort`, { id: "port1" });
    expect([del.status, del.body]).to.deep.equal([200, {}]);
    expect(await watch.next()).to.include({ type: "WATCH_EVENT_TYPE_DELETE" });

    // The services API is on the same listener.
    const svc = `http://127.0.0.1:${port}/nsmts.services.v1.ServiceManager/`;
    const created = await curlJson(`${svc}CreateService`, { name: "web", labels: { app: "web" } });
    expect([created.status, created.body.name]).to.deep.equal([200, "web"]);
    const got = await curlJson(`${svc}GetService`, { service: "web" });
    expect(got.body).to.deep.include({ name: "web", labels: { app: "web" } });
    const none = await curlJson(`${svc}GetService`, { service: "nope" });
    expect(none.body.code).to.equal("not_found");
  });

  it("answers the DNS records of ports on NSM_RESOURCES_DNS_LISTEN_ON; nodes heartbeat in over JSON", async () => {
    const [port, dnsPort] = [await freePort(), await freePort()];
    const reg = await startRegistry({
      NSM_CONNECT_LISTEN_ON: `tcp://127.0.0.1:${port}`,
      NSM_RESOURCES_DNS_LISTEN_ON: `127.0.0.1:${dnsPort}`,
    });
    expect(reg.output()).to.include(`"dnsAddress":"127.0.0.1:${dnsPort}"`);
    const api = `http://127.0.0.1:${port}/nsmts.resources.v1.`;
    await curlJson(`${api}NetworkManager/CreateNetwork`, { id: "net1" });
    await curlJson(`${api}SubnetManager/CreateSubnet`, { id: "sub1", networkId: "net1", cidr: "198.51.100.0/26" });
    await curlJson(`${api}PortManager/CreatePort`, { id: "port1", networkId: "net1" });
    const dnsWatch = curlStream(`${api}DnsRecordManager/WatchDnsRecords`, {});
    streams.push(dnsWatch);
    expect(await dnsWatch.next()).to.include({ type: "WATCH_EVENT_TYPE_SYNCED" });
    const rec = await curlJson(`${api}DnsRecordManager/CreateDnsRecord`, { name: "web.tenant1.example", portId: "port1" });
    expect(rec.body).to.include({ name: "web.tenant1.example." });
    // The registry's own feed follows the same watch; once this watcher has the record, ask (a few times at most).
    expect(await dnsWatch.next()).to.include({ type: "WATCH_EVENT_TYPE_PUT" });
    let ips: string[] = [];
    for (let i = 0; i < 20 && ips.length === 0; i++) {
      const answer = await exchangeUdp({ host: "127.0.0.1", port: dnsPort }, buildQuery("web.tenant1.example", "A"), { timeoutMs: 2000 });
      ips = (answer.packet.answers ?? []).map((a) => String((a as { data: unknown }).data));
    }
    expect(ips).to.deep.equal(["198.51.100.2"]);

    const node = await curlJson(`${api}NodeManager/CreateNode`, { id: "node-a", tunnelIp: "169.254.10.1", labels: { zone: "a" } });
    expect(node.body).to.include({ state: "NODE_STATE_OUT_OF_SERVICE", reason: "no heartbeat yet" });
    const hb = await curlJson(`${api}NodeManager/Heartbeat`, { id: "node-a" });
    expect(hb.body).to.include({ id: "node-a", state: "NODE_STATE_IN_SERVICE", tunnelIp: "169.254.10.1" });
  });
});
