/**
 * The table the manifest probes are checked against (SERVED_SERVICES) is what the real programs serve: each
 * program runs as a process and its grpc.health.v1 service answers SERVING for exactly the names in its row and
 * NotFound for the other NSM service names.
 */

import { Health, HealthCheckResponse_ServingStatus } from "@nsm-ts/api/health";
import { createClient, dial } from "@nsm-ts/base/grpc";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { freePort } from "@nsm-ts/testing/net";
import { expect } from "chai";
import { type ProgramSet, startEndpoint, startNode, startRegistry, useProgramSet } from "../programs/harness.js";
import { SERVED_SERVICES } from "./manifests.js";

const ALL = [...new Set(Object.values(SERVED_SERVICES).flat()), "ipam.IPAM"];

describe("deployments: probed services are served by the programs", function () {
  this.timeout(60_000);
  let set: ProgramSet;
  useProgramSet((s) => {
    set = s;
  });

  it("registry, nsmgr, nsmgr-proxy, forwarder, endpoint and traffic controller answer health checks as the table says", async () => {
    const { url: registryUrl } = await startRegistry(set);
    const node = await startNode(set, 1, registryUrl);
    await startEndpoint(set, "nse-h", node.socket, "health-ns");
    const tcUrl = `tcp://127.0.0.1:${await freePort()}`;
    await set.start("cmd-traffic-controller", { NSM_LISTEN_ON: tcUrl, NSM_HTTP_LISTEN_ON: "off" }, "cmd-traffic-controller serving");
    const npUrl = `tcp://127.0.0.1:${await freePort()}`;
    await set.start(
      "cmd-nsmgr-proxy",
      {
        NSM_LISTEN_ON: npUrl,
        NSM_REGISTRY_URL: registryUrl,
        NSM_REGISTRY_PROXY_URL: registryUrl,
        NSM_MAP_IP_FILE_PATH: "/nonexistent/map-ip.yaml",
      },
      "cmd-nsmgr-proxy serving",
    );
    const urls: Record<string, string> = {
      "traffic-controller": tcUrl,
      registry: registryUrl,
      nsmgr: node.tcpUrl,
      "nsmgr-proxy": npUrl,
      forwarder: set.socket("forwarder-1.sock"),
      endpoint: set.socket("nse-h.sock"),
    };
    const seen: Record<string, string[]> = {};
    for (const [program, url] of Object.entries(urls)) {
      const channel = dial(url);
      try {
        const health = createClient(Health, channel);
        seen[program] = [];
        for (const service of ALL) {
          try {
            const res = await health.check({ service }, { timeoutMs: 5000 });
            if (res.status === HealthCheckResponse_ServingStatus.SERVING) seen[program].push(service);
          } catch (err) {
            if (!isStatusError(err) || err.code !== Code.NotFound) throw err;
          }
        }
      } finally {
        channel.close();
      }
    }
    const expected = Object.fromEntries(Object.keys(urls).map((p) => [p, [...(SERVED_SERVICES[p] ?? [])].sort()]));
    for (const p of Object.keys(seen)) seen[p]?.sort();
    expect(seen).to.deep.equal(expected);
  });
});
