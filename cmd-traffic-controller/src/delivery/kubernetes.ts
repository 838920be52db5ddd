/**
 * Kubernetes target: each Istio resource is applied with server-side apply (`application/apply-patch+yaml`,
 * field manager `nsmts-traffic-controller`, force: the controller owns these fields) through
 * @kubernetes/client-node, and deleted when its intent goes. Apply is declarative, so applying an entry twice
 * has one effect. The cluster is reached with a kubeconfig file (its current context) or, without one, the
 * cluster target's `kubernetes_url` with no credentials (a local `kubectl proxy`, tests).
 */
import { KubeConfig, type KubernetesObject, KubernetesObjectApi, PatchStrategy } from "@kubernetes/client-node";
import { parse } from "yaml";
import type { Delivery, DeliveryTarget } from "./target.js";

/** Options of `createKubernetesTarget`. */
export interface KubernetesTargetOptions {
  /** API server URL (used when `kubeconfigFile` is unset). */
  url: string;
  /** A kubeconfig file: its current context's cluster and credentials are used. */
  kubeconfigFile?: string;
  /** Field manager of the applies; default `nsmts-traffic-controller`. */
  fieldManager?: string;
}

/** apiVersion of each kind the compiler emits, by the lower-case kind of the tree path. */
const API_VERSIONS: Record<string, { apiVersion: string; kind: string }> = {
  authorizationpolicy: { apiVersion: "security.istio.io/v1", kind: "AuthorizationPolicy" },
  peerauthentication: { apiVersion: "security.istio.io/v1beta1", kind: "PeerAuthentication" },
  virtualservice: { apiVersion: "networking.istio.io/v1beta1", kind: "VirtualService" },
  destinationrule: { apiVersion: "networking.istio.io/v1beta1", kind: "DestinationRule" },
  serviceentry: { apiVersion: "networking.istio.io/v1beta1", kind: "ServiceEntry" },
  gateway: { apiVersion: "networking.istio.io/v1beta1", kind: "Gateway" },
};

/** The object a tree path `<namespace>/<kind>/<name>.yaml` names. */
export function objectOfPath(path: string): KubernetesObject {
  const [namespace = "", kindLower = "", file = ""] = path.split("/");
  const t = API_VERSIONS[kindLower];
  if (t === undefined) throw new Error(`kubernetes target: path ${JSON.stringify(path)} names no known kind`);
  return { apiVersion: t.apiVersion, kind: t.kind, metadata: { namespace, name: file.replace(/\.yaml$/, "") } };
}

const statusOf = (err: unknown): number | undefined => (err as { code?: number }).code;

/** Creates the target. */
export function createKubernetesTarget(opts: KubernetesTargetOptions): DeliveryTarget {
  const kc = new KubeConfig();
  if (opts.kubeconfigFile !== undefined && opts.kubeconfigFile !== "") kc.loadFromFile(opts.kubeconfigFile);
  else
    kc.loadFromOptions({
      // client-node refuses http:// unless TLS checks are off; there is no TLS to check on plain HTTP.
      clusters: [{ name: "target", server: opts.url, skipTLSVerify: opts.url.startsWith("http:") }],
      users: [{ name: "controller" }],
      contexts: [{ name: "target", cluster: "target", user: "controller" }],
      currentContext: "target",
    });
  const api = KubernetesObjectApi.makeApiClient(kc);
  const manager = opts.fieldManager ?? "nsmts-traffic-controller";
  return {
    async apply(d: Delivery): Promise<void> {
      for (const [path, yaml] of Object.entries(d.puts)) {
        if (path.startsWith("nsm/")) continue;
        const obj = parse(yaml) as KubernetesObject;
        try {
          await api.patch(obj, undefined, undefined, manager, true, PatchStrategy.ServerSideApply);
        } catch (err) {
          throw new Error(`kubernetes target: apply ${path}: ${describe(err)}`);
        }
      }
      for (const path of d.deletes) {
        if (path.startsWith("nsm/")) continue;
        try {
          await api.delete(objectOfPath(path));
        } catch (err) {
          if (statusOf(err) !== 404) throw new Error(`kubernetes target: delete ${path}: ${describe(err)}`);
        }
      }
    },
  };
}

function describe(err: unknown): string {
  const e = err as { code?: number; body?: unknown; message?: string };
  let reason = e.message ?? String(err);
  if (typeof e.body === "string") {
    try {
      reason = (JSON.parse(e.body) as { message?: string }).message ?? reason;
    } catch {
      /* not JSON: keep the message */
    }
  } else if (typeof e.body === "object" && e.body !== null && "message" in e.body)
    reason = String((e.body as { message: unknown }).message);
  return e.code === undefined ? reason : `HTTP ${e.code}: ${reason}`;
}
