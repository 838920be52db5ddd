/**
 * From an attachment to what its client netns should hold: the port, its groups, the members of every group a
 * rule names, the subnet and its route table, read through a per-pass cache and rendered (see render-sg.ts and
 * render-routes.ts), with the ids it depends on.
 */
import type { Port } from "@nsm-ts/api/resources";
import type { Logger } from "@nsm-ts/base/log";
import type { EnforcementState } from "./apply.js";
import { type PolicyInput, renderRouting } from "./render-routes.js";
import { renderSecurityGroups, type SgGroup } from "./render-sg.js";
import type { ResourceView } from "./view.js";

/** A connection to enforce on: where its client interface is and which port its addresses came from. */
export interface Attachment {
  readonly connectionId: string;
  /** The client's netns (the KERNEL mechanism's netns URL). */
  readonly netnsUrl: string;
  /** The connection's interface in that netns. */
  readonly ifName: string;
  /** The port in the resource managers (`extra_context["nsmts.resources/port"]`); empty for policy routes only. */
  readonly portId: string;
  /** Endpoint-side addresses (`dst_ip_addrs`), the default next hop of route-table routes. */
  readonly peer: readonly string[];
  /** `ip_context.policies`. */
  readonly policies: readonly PolicyInput[];
}

/**
 * The records a rendering read: a change of any of them renders it again. Member ports of a remote group are
 * covered by that group (a port change names the groups it was and is in), not listed one by one: a row naming
 * a group of a thousand ports stays one index entry.
 */
export interface Deps {
  readonly groups: readonly string[];
  /** The connection's own port. */
  readonly ports: readonly string[];
  readonly subnets: readonly string[];
  readonly routeTables: readonly string[];
}

/** Text of the two parts of a rendered state, compared to tell what changed. */
export interface StateText {
  readonly nft: string;
  readonly routing: string;
}

/** An attachment with its rendered state and dependencies. */
export interface Rendered extends Attachment {
  readonly state: EnforcementState;
  /**
   * The rendered state as text, once per render: an unchanged render writes nothing, and the reconciler applies
   * only the part that differs from what it applied last.
   */
  readonly parts: StateText;
  readonly deps: Deps;
}

/** Per-pass memo of record reads, so re-rendering many rows that share a group reads the group once. */
export class ReadCache {
  readonly #m = new Map<string, Promise<unknown>>();
  constructor(
    readonly view: ResourceView,
    readonly signal: AbortSignal,
  ) {}
  #get<T>(key: string, f: () => Promise<T>): Promise<T> {
    let p = this.#m.get(key) as Promise<T> | undefined;
    if (p === undefined) {
      p = f();
      this.#m.set(key, p);
    }
    return p;
  }
  port = (id: string) => this.#get(`p/${id}`, () => this.view.getPort(id, this.signal));
  group = (id: string) => this.#get(`g/${id}`, () => this.view.getSecurityGroup(id, this.signal));
  members = (id: string) => this.#get(`m/${id}`, () => this.view.portsInGroup(id, this.signal));
  /** The members' addresses, one array per group and pass: every row shares it (and its rendered nft set). */
  memberAddresses = (id: string) => this.#get(`a/${id}`, async () => (await this.members(id)).flatMap(addressesOf));
  subnet = (id: string) => this.#get(`s/${id}`, () => this.view.getSubnet(id, this.signal));
  routeTable = (id: string) => this.#get(`r/${id}`, () => this.view.getRouteTable(id, this.signal));
}

function addressesOf(p: Port): string[] {
  return p.fixedIps.map((f) => f.ipAddress).filter((a) => a !== "");
}

/** Renders one attachment against the records as they are now (read through `cache`). */
export async function renderAttachment(owner: string, a: Attachment, cache: ReadCache, log: Logger): Promise<Rendered> {
  const port = a.portId === "" ? undefined : await cache.port(a.portId);
  const groupIds = port?.securityGroupIds ?? [];
  const groups: SgGroup[] = [];
  for (const id of groupIds) {
    const g = await cache.group(id);
    // A group the port names but the store lacks adds no rule: what is not allowed stays dropped.
    if (g === undefined) log.warn({ connId: a.connectionId, port: a.portId, securityGroup: id }, "enforcement: security group not found");
    else groups.push(g);
  }
  const remote = [...new Set(groups.flatMap((g) => g.rules.map((r) => r.remoteGroupId)).filter((id) => id !== ""))];
  const members = new Map<string, readonly string[]>();
  for (const id of remote) members.set(id, await cache.memberAddresses(id));
  const subnetId = port?.fixedIps[0]?.subnetId ?? "";
  const subnet = subnetId === "" ? undefined : await cache.subnet(subnetId);
  const rtId = subnet?.routeTableId ?? "";
  const rt = rtId === "" ? undefined : await cache.routeTable(rtId);
  if (port === undefined && a.portId !== "")
    log.warn({ connId: a.connectionId, port: a.portId }, "enforcement: port not found; nothing to enforce");
  const sg = groupIds.length > 0 ? renderSecurityGroups(owner, a.connectionId, { ifName: a.ifName, groups, members }) : undefined;
  const routing = renderRouting(owner, a.connectionId, {
    ifName: a.ifName,
    peer: a.peer,
    tableRoutes: rt?.routes ?? [],
    policies: a.policies,
  });
  const skipped = [...(sg?.skipped ?? []), ...routing.skipped];
  if (skipped.length > 0) log.warn({ connId: a.connectionId, port: a.portId, skipped }, "enforcement: entries left out");
  const state: EnforcementState = { nft: sg?.table, routing };
  return {
    ...a,
    state,
    parts: { nft: JSON.stringify(state.nft ?? null), routing: JSON.stringify([routing.routes, routing.rules]) },
    deps: {
      groups: [...new Set([...groupIds, ...remote])],
      ports: a.portId === "" ? [] : [a.portId],
      subnets: subnetId === "" ? [] : [subnetId],
      routeTables: rtId === "" ? [] : [rtId],
    },
  };
}
