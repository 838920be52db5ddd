/**
 * The merge: what one data-plane node should program for a service, from every source's rows. Pure functions of
 * rows, so the model, the watch and the tests compute it the same way.
 *
 * - A service exists while at least one source describes it; backends that arrive first wait (orphans).
 * - Service fields merge field by field, the highest-priority source that sets a field winning (labels key by key).
 * - Backends with the same address are one instance; their fields merge the same way, and the instance carries
 *   the winning source.
 * - A local redirect, while it exists, narrows the backends to the watching node's instances when it has any.
 */
import { create } from "@bufbuild/protobuf";
import {
  type Backend,
  BackendHealth,
  type Frontend,
  type LocalRedirect,
  Protocol,
  type ResolvedBackend,
  ResolvedBackendSchema,
  ResolvedFrontendSchema,
  type ResolvedService,
  ResolvedServiceSchema,
  type Service,
  type ServicePort,
  ServicePortSchema,
} from "@nsm-ts/api/services";
import { priorityOf } from "./names.js";

/** Every row about one service, as stored. */
export interface ServiceRows {
  readonly services: readonly Service[];
  readonly frontends: readonly Frontend[];
  readonly backends: readonly Backend[];
  readonly redirect: LocalRedirect | undefined;
}

const byPriority = <T extends { source: string }>(rows: readonly T[]): T[] =>
  [...rows].sort((a, b) => priorityOf(b.source) - priorityOf(a.source) || a.source.localeCompare(b.source));

/** The first value (in priority order) that is set. */
function first<T, V>(rows: readonly T[], get: (r: T) => V, isSet: (v: V) => boolean): V | undefined {
  for (const r of rows) {
    const v = get(r);
    if (isSet(v)) return v;
  }
  return undefined;
}

/** Labels merged key by key, higher priority first. */
function mergeLabels(rows: readonly { labels: { [k: string]: string } }[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of rows) for (const [k, v] of Object.entries(r.labels)) if (!(k in out)) out[k] = v;
  return out;
}

/** One instance after merging the rows of every source that describes its address. */
export function mergeBackends(rows: readonly Backend[]): Backend[] {
  const byAddress = new Map<string, Backend[]>();
  for (const b of byPriority(rows)) {
    const list = byAddress.get(b.address);
    if (list === undefined) byAddress.set(b.address, [b]);
    else list.push(b);
  }
  const out: Backend[] = [];
  for (const [, list] of [...byAddress].sort(([a], [b]) => a.localeCompare(b))) {
    const top = list[0] as Backend;
    out.push({
      ...top,
      ports:
        first(
          list,
          (b) => b.ports,
          (v) => v.length > 0,
        ) ?? [],
      node:
        first(
          list,
          (b) => b.node,
          (v) => v !== "",
        ) ?? "",
      zone:
        first(
          list,
          (b) => b.zone,
          (v) => v !== "",
        ) ?? "",
      labels: mergeLabels(list),
      weight:
        first(
          list,
          (b) => b.weight,
          (v) => v > 0,
        ) ?? 0,
      health:
        first(
          list,
          (b) => b.health,
          (v) => v !== BackendHealth.UNSPECIFIED,
        ) ?? BackendHealth.UNSPECIFIED,
      instanceIp:
        first(
          list,
          (b) => b.instanceIp,
          (v) => v !== "",
        ) ?? "",
    });
  }
  return out;
}

/** The port of `b` that serves service port `sp`, or undefined when it does not serve it. */
export function backendPortFor(b: Backend, sp: ServicePort, servicePorts: readonly ServicePort[]): number | undefined {
  if (b.ports.length === 0) return sp.port;
  const named = b.ports.find((p) => p.name !== "" && p.name === sp.name);
  if (named !== undefined) return named.port;
  const unnamed = b.ports.filter((p) => p.name === "");
  // An unnamed backend port serves the service port of the same number, or the service's only port.
  const same = unnamed.find((p) => p.port === sp.port);
  if (same !== undefined) return same.port;
  if (servicePorts.length === 1 && unnamed.length === 1) return (unnamed[0] as { port: number }).port;
  return undefined;
}

const matches = (labels: { [k: string]: string }, want: { [k: string]: string }): boolean =>
  Object.entries(want).every(([k, v]) => labels[k] === v);

/**
 * The resolved view of one service for `node` (empty: no local redirect applies), or undefined when no source
 * describes the service. `revision` is stamped as given.
 */
export function resolveService(name: string, rows: ServiceRows, node: string, revision: string): ResolvedService | undefined {
  if (rows.services.length === 0) return undefined;
  const svc = byPriority(rows.services);
  const ports = (
    first(
      svc,
      (s) => s.ports,
      (v) => v.length > 0,
    ) ?? []
  ).map((p) =>
    create(ServicePortSchema, { name: p.name, port: p.port, protocol: p.protocol === Protocol.UNSPECIFIED ? Protocol.TCP : p.protocol }),
  );
  // A service without ports is an address-only service: one pseudo port 0 (every port, every protocol).
  const served = ports.length > 0 ? ports : [create(ServicePortSchema, { name: "", port: 0, protocol: Protocol.UNSPECIFIED })];
  let instances = mergeBackends(rows.backends);
  let localRedirect = false;
  if (rows.redirect !== undefined && node !== "") {
    const want = rows.redirect.backendLabels;
    const local = instances.filter((b) => b.node === node && matches(b.labels, want));
    if (local.length > 0) {
      instances = local;
      localRedirect = true;
    }
  }
  const backends: ResolvedBackend[] = [];
  for (const sp of served) {
    for (const b of instances) {
      const port = sp.port === 0 ? 0 : backendPortFor(b, sp, ports);
      if (port === undefined) continue;
      backends.push(
        create(ResolvedBackendSchema, {
          address: b.address,
          port,
          protocol: sp.protocol,
          portName: sp.name,
          node: b.node,
          zone: b.zone,
          labels: b.labels,
          source: b.source,
          weight: b.weight === 0 ? 1 : b.weight,
          health: b.health === BackendHealth.UNSPECIFIED ? BackendHealth.HEALTHY : b.health,
          name: b.name,
          instanceIp: b.instanceIp,
        }),
      );
    }
  }
  const frontends = [...rows.frontends]
    .sort((a, b) => a.policy - b.policy)
    .flatMap((f) =>
      served.map((sp) =>
        create(ResolvedFrontendSchema, { address: f.address, port: sp.port, protocol: sp.protocol, policy: f.policy, portName: sp.name }),
      ),
    );
  return create(ResolvedServiceSchema, {
    name,
    ports,
    labels: mergeLabels(svc),
    sessionAffinitySeconds:
      first(
        svc,
        (s) => s.sessionAffinitySeconds,
        (v) => v > 0,
      ) ?? 0,
    frontends,
    backends,
    localRedirect,
    revision,
  });
}
