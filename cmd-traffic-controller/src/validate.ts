/**
 * Validation of clusters, traffic groups and intents, each error naming the field: malformed values are
 * `InvalidArgument`; references to what does not exist and conflicts with other intents are
 * `FailedPrecondition`. `checkIntent` judges an intent against the snapshot it is about to join.
 */
import { type ClientRef, type Cluster, type Intent, MtlsMode, type TrafficGroup } from "@nsm-ts/api/intents";
import { parseUrl } from "@nsm-ts/base/grpc";
import { isSpiffeId } from "@nsm-ts/base/identity";
import { Code, fail } from "@nsm-ts/base/status";
import { intentId, type Snapshot } from "./model.js";

const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const HOST = /^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;
export const PROTOCOLS = ["HTTP", "HTTP2", "GRPC", "TCP", "TLS"] as const;
const MAX_DURATION_MS = 24 * 3600 * 1000;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

const invalid = (field: string, why: string): never => fail(Code.InvalidArgument, `traffic-controller: ${field}: ${why}`);
const precondition = (field: string, why: string): never => fail(Code.FailedPrecondition, `traffic-controller: ${field}: ${why}`);

/** Checks a DNS label (lower case letters, digits, '-', at most 63). */
export function checkLabel(field: string, v: string): void {
  if (!LABEL.test(v)) invalid(field, `${JSON.stringify(v)} is not a DNS label (lower case letters, digits and '-', at most 63)`);
}

/**
 * Parses a duration such as "2s", "1.5s", "500ms", "1m30s" (units ms, s, m, h) into milliseconds; empty is
 * undefined. Zero, negative and over 24h are refused.
 */
export function parseDurationField(field: string, v: string): number | undefined {
  if (v === "") return undefined;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < v.length) {
    re.lastIndex = at;
    const m = re.exec(v);
    if (m === null) return invalid(field, `${JSON.stringify(v)} is not a duration (e.g. "2s", "500ms", "1m30s")`);
    total += Number(m[1]) * (UNIT_MS[m[2] ?? "s"] ?? 1000);
    at = re.lastIndex;
  }
  if (!(total >= 1) || total > MAX_DURATION_MS) invalid(field, `${JSON.stringify(v)} must be at least 1ms and at most 24h`);
  return Math.round(total);
}

/** Validates a cluster on its own. */
export function checkCluster(c: Cluster): void {
  checkLabel("name", c.name);
  for (const [k, v] of Object.entries(c.labels)) {
    if (!/^[A-Za-z0-9]([-A-Za-z0-9_./]{0,251}[A-Za-z0-9])?$/.test(k)) invalid(`labels[${JSON.stringify(k)}]`, "not a label key");
    if (v.length > 253) invalid(`labels[${JSON.stringify(k)}]`, "value longer than 253 characters");
  }
  const t = c.target;
  if (t === undefined) return;
  if (t.gitBranch !== "" && !/^[A-Za-z0-9][-A-Za-z0-9_./]*$/.test(t.gitBranch))
    invalid("target.git_branch", `${JSON.stringify(t.gitBranch)} is not a branch name`);
  if (t.gitBranch !== "" && t.gitUrl === "") invalid("target.git_branch", "set without target.git_url");
  if (t.gitUrl.startsWith("-")) invalid("target.git_url", "must not start with '-'");
  if (t.registryUrl !== "") {
    try {
      parseUrl(t.registryUrl);
    } catch (err) {
      invalid("target.registry_url", (err as Error).message);
    }
  }
  if (t.kubernetesUrl !== "") {
    let u: URL | undefined;
    try {
      u = new URL(t.kubernetesUrl);
    } catch {
      invalid("target.kubernetes_url", `${JSON.stringify(t.kubernetesUrl)} is not a URL`);
    }
    if (u !== undefined && u.protocol !== "https:" && u.protocol !== "http:")
      invalid("target.kubernetes_url", "must be http:// or https://");
  }
  if (t.kubeconfigFile !== "" && t.kubernetesUrl === "") invalid("target.kubeconfig_file", "set without target.kubernetes_url");
}

/** Validates a traffic group on its own. */
export function checkGroup(g: TrafficGroup): void {
  checkLabel("name", g.name);
  if (g.description.length > 1024) invalid("description", "longer than 1024 characters");
}

function checkClusterRef(field: string, name: string, snap: Snapshot): void {
  checkLabel(field, name);
  if (!snap.clusters.has(name)) precondition(field, `unknown cluster ${JSON.stringify(name)}`);
}

/** The namespace of a spec, defaulted. */
export const namespaceOf = (ns: string): string => (ns === "" ? "default" : ns);

/** Validates an intent against `snap` (which must not contain the intent itself). */
export function checkIntent(i: Intent, snap: Snapshot): void {
  checkLabel("traffic_group", i.trafficGroup);
  if (!snap.groups.has(i.trafficGroup)) precondition("traffic_group", `unknown traffic group ${JSON.stringify(i.trafficGroup)}`);
  checkLabel("name", i.name);
  const self = intentId(i.trafficGroup, i.name);
  const others = [...snap.intents].filter(([id]) => id !== self);
  if (i.spec.case === "inbound") {
    const s = i.spec.value;
    checkLabel("inbound.service", s.service);
    checkClusterRef("inbound.cluster", s.cluster, snap);
    if (s.namespace !== "") checkLabel("inbound.namespace", s.namespace);
    if (s.ports.length === 0) invalid("inbound.ports", "at least one port is required");
    const seen = new Set<number>();
    s.ports.forEach((p, n) => {
      if (p.number < 1 || p.number > 65535) invalid(`inbound.ports[${n}].number`, `${p.number} is not a port (1-65535)`);
      if (seen.has(p.number)) invalid(`inbound.ports[${n}].number`, `port ${p.number} appears twice`);
      seen.add(p.number);
      if (p.protocol !== "" && !(PROTOCOLS as readonly string[]).includes(p.protocol))
        invalid(`inbound.ports[${n}].protocol`, `${JSON.stringify(p.protocol)} is not one of ${PROTOCOLS.join(", ")}`);
      if (p.name !== "") checkLabel(`inbound.ports[${n}].name`, p.name);
    });
    s.allowedClients.forEach((c, n) => {
      const f = `inbound.allowed_clients[${n}]`;
      if (c.spiffeId !== "") {
        if (c.app !== "" || c.cluster !== "" || c.namespace !== "") invalid(f, "spiffe_id excludes app, cluster and namespace");
        if (!isSpiffeId(c.spiffeId)) invalid(`${f}.spiffe_id`, `${JSON.stringify(c.spiffeId)} is not a spiffe:// ID`);
        return;
      }
      checkLabel(`${f}.app`, c.app);
      if (c.cluster !== "") checkClusterRef(`${f}.cluster`, c.cluster, snap);
      if (c.namespace !== "") checkLabel(`${f}.namespace`, c.namespace);
    });
    if (!(s.mtlsMode in MtlsMode)) invalid("inbound.mtls_mode", `unknown mode ${s.mtlsMode}`);
    s.gatewayHosts.forEach((h, n) => {
      if (!HOST.test(h)) invalid(`inbound.gateway_hosts[${n}]`, `${JSON.stringify(h)} is not a host name`);
    });
    for (const [id, o] of others) {
      if (
        o.spec.case === "inbound" &&
        o.spec.value.service === s.service &&
        (o.spec.value.cluster === s.cluster || o.trafficGroup === i.trafficGroup)
      )
        precondition(
          "inbound.service",
          `conflicts with intent ${id}, which already exposes service ${JSON.stringify(s.service)}${o.trafficGroup === i.trafficGroup ? " in this traffic group" : ` in cluster ${JSON.stringify(s.cluster)}`}`,
        );
      // Narrowing the allowed clients must not strand an outbound intent that relies on them.
      if (
        o.spec.case === "outbound" &&
        o.trafficGroup === i.trafficGroup &&
        o.spec.value.service === s.service &&
        !allows(s.allowedClients, o.spec.value)
      )
        precondition(
          "inbound.allowed_clients",
          `conflicts with intent ${id}: client ${JSON.stringify(o.spec.value.clientApp)} in cluster ${JSON.stringify(o.spec.value.cluster)} calls this service but would not be allowed`,
        );
    }
    return;
  }
  if (i.spec.case === "outbound") {
    const s = i.spec.value;
    checkLabel("outbound.client_app", s.clientApp);
    checkClusterRef("outbound.cluster", s.cluster, snap);
    if (s.namespace !== "") checkLabel("outbound.namespace", s.namespace);
    checkLabel("outbound.service", s.service);
    parseDurationField("outbound.timeout", s.timeout);
    if (s.retries !== undefined) {
      if (s.retries.attempts > 100) invalid("outbound.retries.attempts", "at most 100");
      parseDurationField("outbound.retries.per_try_timeout", s.retries.perTryTimeout);
      if (s.retries.retryOn !== "" && !/^[a-z0-9-]+(,[a-z0-9-]+)*$/.test(s.retries.retryOn))
        invalid("outbound.retries.retry_on", "a comma list of Istio retry conditions");
    }
    if (s.outlierDetection !== undefined) {
      parseDurationField("outbound.outlier_detection.interval", s.outlierDetection.interval);
      parseDurationField("outbound.outlier_detection.base_ejection_time", s.outlierDetection.baseEjectionTime);
      if (s.outlierDetection.maxEjectionPercent > 100) invalid("outbound.outlier_detection.max_ejection_percent", "at most 100");
    }
    const inbound = others.find(
      ([, o]) => o.trafficGroup === i.trafficGroup && o.spec.case === "inbound" && o.spec.value.service === s.service,
    )?.[1];
    if (inbound?.spec.case !== "inbound") {
      precondition(
        "outbound.service",
        `unknown service ${JSON.stringify(s.service)}: no inbound intent of traffic group ${JSON.stringify(i.trafficGroup)} exposes it`,
      );
      return;
    }
    if (!allows(inbound.spec.value.allowedClients, s))
      precondition(
        "outbound.client_app",
        `conflicts with intent ${intentId(inbound.trafficGroup, inbound.name)}: ${JSON.stringify(s.clientApp)} in cluster ${JSON.stringify(s.cluster)} is not among its allowed_clients`,
      );
    for (const [id, o] of others) {
      if (o.spec.case !== "outbound") continue;
      const v = o.spec.value;
      if (
        v.cluster === s.cluster &&
        namespaceOf(v.namespace) === namespaceOf(s.namespace) &&
        v.clientApp === s.clientApp &&
        v.service === s.service
      )
        precondition(
          "outbound.service",
          `conflicts with intent ${id}, which already routes ${JSON.stringify(s.clientApp)} to ${JSON.stringify(s.service)}`,
        );
    }
    return;
  }
  invalid("spec", "an intent needs inbound or outbound");
  return;
}

/** Whether an allowed-clients list admits an outbound intent's client. */
function allows(list: readonly ClientRef[], o: { clientApp: string; cluster: string; namespace: string }): boolean {
  return list.some(
    (c) =>
      c.spiffeId === "" &&
      c.app === o.clientApp &&
      (c.cluster === "" || c.cluster === o.cluster) &&
      namespaceOf(c.namespace) === namespaceOf(o.namespace),
  );
}
