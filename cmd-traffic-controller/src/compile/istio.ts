/**
 * Istio resources of one cluster, from the intents: per inbound intent an AuthorizationPolicy (allowed clients
 * as principals, only on the service's ports; no clients: no rules, so every caller is denied), a
 * PeerAuthentication (its mTLS mode) and, with gateway hosts, a Gateway and its VirtualService; per outbound
 * intent a VirtualService (timeout, retries) and a DestinationRule (mTLS, connection pool, outlier detection) in
 * the client's namespace, and a ServiceEntry when the service runs in another cluster. Every resource is built
 * with @kubernetes-models/istio and validated against Istio's schema before it is rendered.
 */
import { isIP } from "node:net";
import { DestinationRule } from "@kubernetes-models/istio/networking.istio.io/v1beta1/DestinationRule";
import { Gateway } from "@kubernetes-models/istio/networking.istio.io/v1beta1/Gateway";
import { ServiceEntry } from "@kubernetes-models/istio/networking.istio.io/v1beta1/ServiceEntry";
import { VirtualService } from "@kubernetes-models/istio/networking.istio.io/v1beta1/VirtualService";
import { AuthorizationPolicy } from "@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy";
import { PeerAuthentication } from "@kubernetes-models/istio/security.istio.io/v1beta1/PeerAuthentication";
import { type InboundIntent, type Intent, MtlsMode, type OutboundIntent } from "@nsm-ts/api/intents";
import type { Snapshot } from "../model.js";
import { namespaceOf, parseDurationField } from "../validate.js";

/** Label every generated resource carries, so what the controller owns is easy to select (and prune). */
export const MANAGED_BY = { "app.kubernetes.io/managed-by": "nsmts-traffic-controller" };
/** Cluster label naming the address other clusters reach its services through (its east-west gateway). */
export const EASTWEST_LABEL = "nsmts.io/eastwest-gateway";
/** Cluster label naming its trust domain (SPIFFE IDs, Istio principals); default `cluster.local`. */
export const TRUST_DOMAIN_LABEL = "nsmts.io/trust-domain";

interface Validatable {
  validate(): void;
  toJSON(): unknown;
}

/** A rendered resource before YAML: its tree path and the validated object. */
export interface IstioResource {
  readonly path: string;
  readonly doc: unknown;
  readonly intent: string;
}

const host = (service: string, ns: string) => `${service}.${ns}.svc.cluster.local`;
const seconds = (field: string, v: string): string | undefined => {
  const ms = parseDurationField(field, v);
  return ms === undefined ? undefined : `${ms / 1000}s`;
};
const httpLike = (i: InboundIntent) => i.ports.some((p) => ["", "HTTP", "HTTP2", "GRPC"].includes(p.protocol));
const portName = (p: { name: string; protocol: string; number: number }) => p.name || `${(p.protocol || "HTTP").toLowerCase()}-${p.number}`;

function resource(kind: string, ns: string, name: string, model: Validatable, intent: string): IstioResource {
  model.validate(); // throws naming the schema path when a generated object does not fit Istio's schema
  return { path: `${ns}/${kind.toLowerCase()}/${name}.yaml`, doc: model.toJSON(), intent };
}

const meta = (name: string, ns: string, intent: string) => ({
  name,
  namespace: ns,
  labels: { ...MANAGED_BY },
  annotations: { "nsmts.io/intent": intent },
});

function trustDomainOf(snap: Snapshot, cluster: string): string {
  return snap.clusters.get(cluster)?.labels[TRUST_DOMAIN_LABEL] ?? "cluster.local";
}

/** Istio principals (SPIFFE IDs without the scheme) of an inbound intent's allowed clients. */
export function principalsOf(s: InboundIntent, snap: Snapshot): string[] {
  const out = new Set<string>();
  for (const c of s.allowedClients) {
    if (c.spiffeId !== "") out.add(c.spiffeId.slice("spiffe://".length));
    else {
      const clusters = c.cluster !== "" ? [c.cluster] : [...snap.clusters.keys()];
      for (const cl of clusters) out.add(`${trustDomainOf(snap, cl)}/ns/${namespaceOf(c.namespace)}/sa/${c.app}`);
    }
  }
  return [...out].sort();
}

function inbound(id: string, s: InboundIntent, snap: Snapshot): IstioResource[] {
  const ns = namespaceOf(s.namespace);
  const principals = principalsOf(s, snap);
  const ports = s.ports.map((p) => String(p.number));
  const out = [
    resource(
      "AuthorizationPolicy",
      ns,
      s.service,
      new AuthorizationPolicy({
        metadata: meta(s.service, ns, id),
        spec: {
          selector: { matchLabels: { app: s.service } },
          action: "ALLOW",
          ...(principals.length === 0 ? {} : { rules: [{ from: [{ source: { principals } }], to: [{ operation: { ports } }] }] }),
        },
      }),
      id,
    ),
    resource(
      "PeerAuthentication",
      ns,
      s.service,
      new PeerAuthentication({
        metadata: meta(s.service, ns, id),
        spec: {
          selector: { matchLabels: { app: s.service } },
          mtls: { mode: MtlsMode[s.mtlsMode === MtlsMode.UNSPECIFIED ? MtlsMode.STRICT : s.mtlsMode] as "STRICT" },
        },
      }),
      id,
    ),
  ];
  if (s.gatewayHosts.length > 0) {
    const hosts = [...s.gatewayHosts].sort();
    const first = s.ports[0];
    const gwPort =
      first === undefined
        ? { number: 80, name: "http", protocol: "HTTP" }
        : { number: first.number, name: portName(first), protocol: first.protocol || "HTTP" };
    out.push(
      resource(
        "Gateway",
        ns,
        `${s.service}-ingress`,
        new Gateway({
          metadata: meta(`${s.service}-ingress`, ns, id),
          spec: { selector: { istio: "ingressgateway" }, servers: [{ port: gwPort, hosts }] },
        }),
        id,
      ),
      resource(
        "VirtualService",
        ns,
        `${s.service}-ingress`,
        new VirtualService({
          metadata: meta(`${s.service}-ingress`, ns, id),
          spec: {
            hosts,
            gateways: [`${s.service}-ingress`],
            ...(httpLike(s)
              ? { http: [{ route: [{ destination: { host: host(s.service, ns) } }] }] }
              : { tcp: [{ route: [{ destination: { host: host(s.service, ns) } }] }] }),
          },
        }),
        id,
      ),
    );
  }
  return out;
}

function outbound(id: string, s: OutboundIntent, target: InboundIntent, targetCluster: string, snap: Snapshot): IstioResource[] {
  const ns = namespaceOf(s.namespace);
  const h = host(s.service, namespaceOf(target.namespace));
  const name = `${s.clientApp}-to-${s.service}`;
  const route = [{ destination: { host: h } }];
  const timeout = seconds("outbound.timeout", s.timeout);
  const retries =
    s.retries === undefined
      ? undefined
      : {
          attempts: s.retries.attempts,
          retryOn: s.retries.retryOn || "5xx,reset,connect-failure",
          ...(s.retries.perTryTimeout === ""
            ? {}
            : { perTryTimeout: seconds("outbound.retries.per_try_timeout", s.retries.perTryTimeout) }),
        };
  const http = { route, ...(timeout === undefined ? {} : { timeout }), ...(retries === undefined ? {} : { retries }) };
  const od = s.outlierDetection;
  const cp = s.connectionPool;
  const out = [
    resource(
      "VirtualService",
      ns,
      name,
      new VirtualService({
        metadata: meta(name, ns, id),
        spec: { hosts: [h], exportTo: ["."], ...(httpLike(target) ? { http: [http] } : { tcp: [{ route }] }) },
      }),
      id,
    ),
    resource(
      "DestinationRule",
      ns,
      name,
      new DestinationRule({
        metadata: meta(name, ns, id),
        spec: {
          host: h,
          exportTo: ["."],
          workloadSelector: { matchLabels: { app: s.clientApp } },
          trafficPolicy: {
            tls: { mode: target.mtlsMode === MtlsMode.DISABLE ? "DISABLE" : "ISTIO_MUTUAL" },
            ...(cp === undefined
              ? {}
              : {
                  connectionPool: {
                    ...(cp.maxConnections === 0 ? {} : { tcp: { maxConnections: cp.maxConnections } }),
                    http: {
                      ...(cp.http1MaxPendingRequests === 0 ? {} : { http1MaxPendingRequests: cp.http1MaxPendingRequests }),
                      ...(cp.maxRequestsPerConnection === 0 ? {} : { maxRequestsPerConnection: cp.maxRequestsPerConnection }),
                    },
                  },
                }),
            ...(od === undefined
              ? {}
              : {
                  outlierDetection: {
                    ...(od.consecutiveErrors === 0 ? {} : { consecutive5xxErrors: od.consecutiveErrors }),
                    ...(od.interval === "" ? {} : { interval: seconds("outbound.outlier_detection.interval", od.interval) }),
                    ...(od.baseEjectionTime === ""
                      ? {}
                      : { baseEjectionTime: seconds("outbound.outlier_detection.base_ejection_time", od.baseEjectionTime) }),
                    ...(od.maxEjectionPercent === 0 ? {} : { maxEjectionPercent: od.maxEjectionPercent }),
                  },
                }),
          },
        },
      }),
      id,
    ),
  ];
  if (targetCluster !== s.cluster) {
    const seName = `${s.service}-${targetCluster}`;
    const gw = snap.clusters.get(targetCluster)?.labels[EASTWEST_LABEL] ?? `eastwest.${targetCluster}.mesh.internal`;
    const ports = target.ports.map((p) => ({ number: p.number, name: portName(p), protocol: p.protocol || "HTTP" }));
    out.push(
      resource(
        "ServiceEntry",
        ns,
        seName,
        new ServiceEntry({
          // Shared by every client of the service in this namespace, so it names the group, not one intent.
          metadata: {
            name: seName,
            namespace: ns,
            labels: { ...MANAGED_BY },
            annotations: { "nsmts.io/traffic-group": snap.intents.get(id)?.trafficGroup ?? "" },
          },
          spec: {
            hosts: [h],
            exportTo: ["."],
            location: "MESH_INTERNAL",
            resolution: isIP(gw) === 0 ? "DNS" : "STATIC",
            ports,
            // Istio's multi-network convention: the remote east-west gateway passes mTLS through on 15443.
            endpoints: [{ address: gw, ports: Object.fromEntries(ports.map((p) => [p.name, 15443])) }],
          },
        }),
        id,
      ),
    );
  }
  return out;
}

/** The Istio resources of `cluster`, in path order. */
export function compileIstio(cluster: string, snap: Snapshot): IstioResource[] {
  const out: IstioResource[] = [];
  for (const [id, i] of snap.intents) {
    if (i.spec.case === "inbound" && i.spec.value.cluster === cluster) out.push(...inbound(id, i.spec.value, snap));
    if (i.spec.case === "outbound" && i.spec.value.cluster === cluster) {
      const svc = i.spec.value.service;
      const t = [...snap.intents.values()].find(
        (x): x is Intent & { spec: { case: "inbound"; value: InboundIntent } } =>
          x.trafficGroup === i.trafficGroup && x.spec.case === "inbound" && x.spec.value.service === svc,
      );
      if (t !== undefined) out.push(...outbound(id, i.spec.value, t.spec.value, t.spec.value.cluster, snap));
    }
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
