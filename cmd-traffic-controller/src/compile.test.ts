import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DestinationRule } from "@kubernetes-models/istio/networking.istio.io/v1beta1/DestinationRule";
import { Gateway } from "@kubernetes-models/istio/networking.istio.io/v1beta1/Gateway";
import { ServiceEntry } from "@kubernetes-models/istio/networking.istio.io/v1beta1/ServiceEntry";
import { VirtualService } from "@kubernetes-models/istio/networking.istio.io/v1beta1/VirtualService";
import { AuthorizationPolicy } from "@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy";
import { PeerAuthentication } from "@kubernetes-models/istio/security.istio.io/v1beta1/PeerAuthentication";
import { expect } from "chai";
import { parse } from "yaml";
import { clientAllowed, compileCluster, compileNsm } from "./compile/index.js";
import { inboundA, memoryObjects, outboundB, seedShop } from "./intents.fixture.js";

// Golden trees live in the source tree (tests run from dist/); UPDATE_GOLDEN=1 rewrites them.
const GOLDEN = join(dirname(fileURLToPath(import.meta.url)), "..", "testdata", "golden");
const models: Record<string, new (d: never) => { validate(): void }> = {
  AuthorizationPolicy,
  PeerAuthentication,
  VirtualService,
  DestinationRule,
  ServiceEntry,
  Gateway,
};

async function trees(mutate?: (o: Awaited<ReturnType<typeof memoryObjects>>) => Promise<void>) {
  const o = memoryObjects();
  await seedShop(o);
  await mutate?.(o);
  const r = await o.store.read();
  const out: Record<string, Record<string, string>> = {};
  for (const c of r.snap.clusters.values()) {
    const tree = compileCluster(c, r.snap).get("git");
    out[c.name] = Object.fromEntries([...(tree ?? new Map())].map(([p, d]) => [p, d.content]));
  }
  await o.store.kv.close();
  return { out, snap: r.snap };
}

describe("traffic-controller: compilation", () => {
  it("matches the golden trees, every Istio document valid against Istio's schema", async () => {
    const { out } = await trees();
    for (const [cluster, tree] of Object.entries(out)) {
      const dir = join(GOLDEN, cluster);
      if (process.env.UPDATE_GOLDEN === "1") {
        for (const [p, content] of Object.entries(tree)) {
          mkdirSync(dirname(join(dir, p)), { recursive: true });
          writeFileSync(join(dir, p), content);
        }
      }
      const files = readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((d) => d.isFile())
        .map((d) => join(d.parentPath, d.name).slice(dir.length + 1))
        .sort();
      expect(Object.keys(tree).sort()).to.deep.equal(files);
      for (const [p, content] of Object.entries(tree)) {
        expect(content, `${cluster}/${p}`).to.equal(readFileSync(join(dir, p), "utf8"));
        const doc = parse(content) as { kind?: string };
        if (p.startsWith("nsm/")) continue;
        const Model = models[doc.kind ?? ""];
        expect(Model, `${p}: kind ${doc.kind}`).to.not.equal(undefined);
        if (Model) new Model(doc as never).validate();
      }
    }
  });

  it("is deterministic: the same intents give the same bytes", async () => {
    const a = await trees();
    const b = await trees();
    expect(JSON.stringify(a.out)).to.equal(JSON.stringify(b.out));
  });

  it("a change of one intent changes only the resources it affects", async () => {
    const before = (await trees()).out;
    const after = (await trees((o) => o.updateIntent(outboundB("7s")).then(() => undefined))).out;
    const changed: string[] = [];
    for (const c of Object.keys(before))
      for (const p of Object.keys(before[c] ?? {})) if (before[c]?.[p] !== after[c]?.[p]) changed.push(`${c}/${p}`);
    expect(changed).to.deep.equal(["edge-b/default/virtualservice/b-to-a.yaml"]);
    expect(after["edge-b"]?.["default/virtualservice/b-to-a.yaml"]).to.contain("timeout: 7s");
    const widened = (
      await trees(async (o) => {
        const i = inboundA();
        if (i.spec.case === "inbound")
          i.spec.value.allowedClients.push({
            $typeName: "nsmts.intents.v1.ClientRef",
            app: "c",
            cluster: "edge-a",
            namespace: "",
            spiffeId: "",
          });
        await o.updateIntent(i);
      })
    ).out;
    const changed2: string[] = [];
    for (const c of Object.keys(before))
      for (const p of Object.keys(before[c] ?? {})) if (before[c]?.[p] !== widened[c]?.[p]) changed2.push(`${c}/${p}`);
    expect(changed2).to.deep.equal(["edge-a/default/authorizationpolicy/a.yaml", "edge-a/nsm/authorization/a.yaml"]);
  });

  it("NSM side: the network service of each inbound intent and who may connect to it", async () => {
    const { snap } = await trees();
    const [a] = compileNsm("edge-a", snap);
    expect(a?.networkService.name).to.equal("a");
    expect(a?.authorization.allowedSpiffeIds).to.deep.equal(["spiffe://cluster.local/ns/default/sa/b"]);
    expect(a && clientAllowed(a.authorization, "spiffe://cluster.local/ns/default/sa/b")).to.equal(true);
    expect(a && clientAllowed(a.authorization, "spiffe://cluster.local/ns/default/sa/c")).to.equal(false);
    expect(compileNsm("edge-b", snap)).to.deep.equal([]);
  });
});
