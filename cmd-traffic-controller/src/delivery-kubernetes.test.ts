import { once } from "node:events";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import { parse } from "yaml";
import { compileCluster } from "./compile/index.js";
import { createKubernetesTarget } from "./delivery/kubernetes.js";
import type { Delivery } from "./delivery/target.js";
import { memoryObjects, seedShop } from "./intents.fixture.js";

interface Call {
  method: string;
  path: string;
  contentType: string;
  body: string;
}

/** A tiny Kubernetes API server: discovery for the Istio groups, server-side apply and delete; refuses objects named "refused". */
function fakeApiServer(calls: Call[]): Server {
  const plural = (kind: string) => (/(Policy|Entry)$/.test(kind) ? `${kind.toLowerCase().slice(0, -1)}ies` : `${kind.toLowerCase()}s`);
  const kinds: Record<string, string[]> = {
    "networking.istio.io/v1beta1": ["VirtualService", "DestinationRule", "ServiceEntry", "Gateway"],
    "security.istio.io/v1": ["AuthorizationPolicy"],
    "security.istio.io/v1beta1": ["PeerAuthentication"],
  };
  return createServer(async (req: IncomingMessage, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    const url = new URL(req.url ?? "/", "http://x");
    calls.push({ method: req.method ?? "", path: `${url.pathname}${url.search}`, contentType: req.headers["content-type"] ?? "", body });
    const reply = (code: number, obj: unknown) => {
      res.writeHead(code, { "content-type": "application/json" });
      res.end(JSON.stringify(obj));
    };
    const gv = /^\/apis\/([^/]+\/[^/]+)$/.exec(url.pathname)?.[1];
    if (req.method === "GET" && gv !== undefined && kinds[gv]) {
      return reply(200, {
        kind: "APIResourceList",
        groupVersion: gv,
        resources: (kinds[gv] ?? []).map((k) => ({ name: plural(k), namespaced: true, kind: k, verbs: ["get", "patch", "delete"] })),
      });
    }
    if (req.method === "PATCH") {
      const obj = parse(body) as { metadata: { name: string } };
      if (obj.metadata.name === "refused")
        return reply(422, {
          kind: "Status",
          apiVersion: "v1",
          status: "Failure",
          message: "admission webhook denied the request: refused by policy",
          code: 422,
        });
      return reply(200, obj);
    }
    if (req.method === "DELETE") return reply(200, { kind: "Status", apiVersion: "v1", status: "Success" });
    return reply(404, { kind: "Status", apiVersion: "v1", status: "Failure", message: "not found", code: 404 });
  });
}

describe("traffic-controller: Kubernetes target (server-side apply against a fake API server)", () => {
  let server: Server;
  let url: string;
  const calls: Call[] = [];

  beforeEach(async () => {
    calls.length = 0;
    server = fakeApiServer(calls);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it("applies each resource with server-side apply and deletes removed ones; a refusal names the resource and the reason", async () => {
    const o = memoryObjects();
    await seedShop(o);
    const r = await o.store.read();
    const cluster = r.snap.clusters.get("edge-b");
    if (cluster === undefined) throw new Error("no cluster");
    cluster.target = {
      $typeName: "nsmts.intents.v1.DeliveryTarget",
      gitUrl: "",
      gitBranch: "",
      registryUrl: "",
      kubernetesUrl: url,
      kubeconfigFile: "",
    };
    const tree = compileCluster(cluster, r.snap).get("kubernetes");
    await o.store.kv.close();
    const puts = Object.fromEntries([...(tree ?? new Map())].map(([p, d]) => [p, d.content]));
    const target = createKubernetesTarget({ url });
    const d: Delivery = {
      cluster: "edge-b",
      seq: "1",
      revision: "7",
      puts,
      deletes: ["default/gateway/old-ingress.yaml"],
      intents: [],
      reason: "test",
    };
    await target.apply(d, new AbortController().signal);
    const patches = calls.filter((c) => c.method === "PATCH");
    expect(patches.map((c) => c.path.split("?")[0]).sort()).to.deep.equal([
      "/apis/networking.istio.io/v1beta1/namespaces/default/destinationrules/b-to-a",
      "/apis/networking.istio.io/v1beta1/namespaces/default/serviceentries/a-edge-a",
      "/apis/networking.istio.io/v1beta1/namespaces/default/virtualservices/b-to-a",
    ]);
    for (const p of patches) {
      expect(p.contentType).to.equal("application/apply-patch+yaml");
      expect(p.path).to.contain("fieldManager=nsmts-traffic-controller");
      expect(p.path).to.contain("force=true");
    }
    expect(calls.filter((c) => c.method === "DELETE").map((c) => c.path)).to.deep.equal([
      "/apis/networking.istio.io/v1beta1/namespaces/default/gateways/old-ingress",
    ]);
    const refused = {
      ...d,
      puts: {
        "default/virtualservice/refused.yaml": (puts["default/virtualservice/b-to-a.yaml"] ?? "").replace("name: b-to-a", "name: refused"),
      },
      deletes: [],
    };
    try {
      await target.apply(refused, new AbortController().signal);
      expect.fail("expected a refusal");
    } catch (err) {
      expect((err as Error).message).to.match(/apply default\/virtualservice\/refused.yaml: HTTP 422: .*refused by policy/);
    }
  });
});
