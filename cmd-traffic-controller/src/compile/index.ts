/**
 * Compilation of a snapshot into the desired resources of every cluster target: `git` receives the Istio YAML
 * tree plus the NSM objects under `nsm/`, `kubernetes` the Istio resources, `registry` the network services.
 * Output is deterministic: the same snapshot gives the same paths and bytes.
 */
import type { Cluster } from "@nsm-ts/api/intents";
import { type DesiredResource, type Snapshot, targetsOf } from "../model.js";
import { compileIstio } from "./istio.js";
import { compileNsm, networkServiceJson } from "./nsm.js";
import { toYaml } from "./yaml.js";

export { compileIstio, EASTWEST_LABEL, type IstioResource, MANAGED_BY, TRUST_DOMAIN_LABEL } from "./istio.js";
export { type AuthorizationInput, allowedClientsPolicy, clientAllowed, compileNsm, type NsmResource } from "./nsm.js";
export { toYaml } from "./yaml.js";

/** Path → resource of one cluster target. */
export type DesiredTree = Map<string, DesiredResource>;

function add(tree: DesiredTree, path: string, content: string, intent: string): void {
  const had = tree.get(path);
  // A resource several intents share (a ServiceEntry) is listed once with every intent it serves.
  tree.set(path, { content, intents: had === undefined ? [intent] : [...new Set([...had.intents, intent])].sort() });
}

/** Desired resources of every target of `cluster`, by target name. */
export function compileCluster(cluster: Cluster, snap: Snapshot): Map<string, DesiredTree> {
  const out = new Map<string, DesiredTree>();
  const targets = targetsOf(cluster);
  if (targets.length === 0) return out;
  const istio = compileIstio(cluster.name, snap);
  const nsm = compileNsm(cluster.name, snap);
  for (const t of targets) {
    const tree: DesiredTree = new Map();
    if (t === "git" || t === "kubernetes") for (const r of istio) add(tree, r.path, toYaml(r.doc), r.intent);
    if (t === "git") {
      for (const r of nsm) {
        add(tree, `nsm/networkservice/${r.service}.yaml`, toYaml(networkServiceJson(r.networkService)), r.intent);
        add(tree, `nsm/authorization/${r.service}.yaml`, toYaml(r.authorization), r.intent);
      }
    }
    if (t === "registry")
      for (const r of nsm) add(tree, `networkservice/${r.service}`, JSON.stringify(networkServiceJson(r.networkService)), r.intent);
    out.set(t, tree);
  }
  return out;
}
