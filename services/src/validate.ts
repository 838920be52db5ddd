/**
 * Input checks of every write, API or source: each returns a clean copy (defaults filled, revision cleared) or
 * fails with InvalidArgument naming the field.
 */
import { create } from "@bufbuild/protobuf";
import {
  type Backend,
  BackendHealth,
  BackendSchema,
  type Frontend,
  FrontendSchema,
  type LocalRedirect,
  LocalRedirectSchema,
  ReconcileState,
  type ReconcileStatus,
  ReconcileStatusSchema,
  type Service,
  ServiceSchema,
} from "@nsm-ts/api/services";
import { Code, fail } from "@nsm-ts/base/status";
import { checkLease } from "./leases.js";
import { requireAddress, requireLabels, requireName, requirePolicy, requirePort, requireProtocol, requireSource } from "./names.js";

/** Backend names may also hold an address (`<address>` is the default), so ':' is allowed. */
const BACKEND_NAME = /^[A-Za-z0-9:]([A-Za-z0-9._:-]{0,251}[A-Za-z0-9])?$/;

export function checkService(s: Service): Service {
  const name = requireName(s.name, "name");
  const source = requireSource(s.source);
  const seen = new Set<string>();
  const ports = s.ports.map((p, i) => {
    if (p.name !== "") requireName(p.name, `ports[${i}].name`);
    const protocol = requireProtocol(p.protocol, `ports[${i}].protocol`);
    const port = requirePort(p.port, `ports[${i}].port`);
    for (const k of [`n/${p.name}`, `p/${port}/${protocol}`]) {
      if (k === "n/") continue;
      if (seen.has(k))
        fail(Code.InvalidArgument, `services: ports[${i}]: duplicate ${k.startsWith("n/") ? `name ${p.name}` : `port ${port}`}`);
      seen.add(k);
    }
    return { name: p.name, port, protocol };
  });
  if (ports.length > 1 && ports.some((p) => p.name === ""))
    fail(Code.InvalidArgument, "services: ports: every port needs a name when there are several");
  requireLabels(s.labels, "labels");
  if (s.sessionAffinitySeconds > 86400) fail(Code.InvalidArgument, "services: session_affinity_seconds: at most 86400");
  return create(ServiceSchema, { name, source, ports, labels: { ...s.labels }, sessionAffinitySeconds: s.sessionAffinitySeconds });
}

export function checkFrontend(f: Frontend, allocates: boolean): Frontend {
  const service = requireName(f.service, "service");
  const policy = requirePolicy(f.policy);
  if (f.address !== "" || !allocates) requireAddress(f.address, "address");
  return create(FrontendSchema, { service, policy, address: f.address });
}

export function checkBackend(b: Backend): Backend {
  const service = requireName(b.service, "service");
  const source = requireSource(b.source);
  const address = requireAddress(b.address, "address");
  const name = b.name === "" ? address : b.name;
  if (!BACKEND_NAME.test(name)) fail(Code.InvalidArgument, `services: name: ${JSON.stringify(name)} is not a backend name`);
  const ports = b.ports.map((p, i) => {
    if (p.name !== "") requireName(p.name, `ports[${i}].name`);
    return { name: p.name, port: requirePort(p.port, `ports[${i}].port`) };
  });
  if (b.node !== "") requireName(b.node, "node");
  if (b.zone !== "") requireName(b.zone, "zone");
  requireLabels(b.labels, "labels");
  if (b.weight > 65535) fail(Code.InvalidArgument, `services: weight: ${b.weight} is above 65535`);
  if (!(b.health in BackendHealth)) fail(Code.InvalidArgument, `services: health: ${b.health} is not a health state`);
  return create(BackendSchema, {
    service,
    source,
    name,
    address,
    ports,
    node: b.node,
    zone: b.zone,
    labels: { ...b.labels },
    weight: b.weight,
    health: b.health,
    leaseSeconds: checkLease(b.leaseSeconds),
  });
}

export function checkRedirect(r: LocalRedirect): LocalRedirect {
  const service = requireName(r.service, "service");
  requireLabels(r.backendLabels, "backend_labels");
  return create(LocalRedirectSchema, { service, backendLabels: { ...r.backendLabels } });
}

export function checkStatus(s: ReconcileStatus): ReconcileStatus {
  const node = requireName(s.node, "node");
  const service = requireName(s.service, "service");
  if (!(s.state in ReconcileState) || s.state === ReconcileState.UNSPECIFIED)
    fail(Code.InvalidArgument, `services: state: ${s.state} is not a reconcile state`);
  if (s.message.length > 1024) fail(Code.InvalidArgument, "services: message: longer than 1024 characters");
  if (!/^[0-9]{0,20}$/.test(s.revision)) fail(Code.InvalidArgument, `services: revision: ${JSON.stringify(s.revision)} is not a revision`);
  return create(ReconcileStatusSchema, {
    node,
    service,
    state: s.state,
    message: s.message,
    revision: s.revision === "" ? "0" : s.revision,
  });
}
