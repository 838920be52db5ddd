/**
 * Makes a client netns hold exactly one connection's enforcement: its nftables table (replaced atomically), its
 * route-table routes and its policy rules and tables. Routes and rules are compared with the kernel's listing
 * (by `routeKey`/`ruleKey`) and only the differences are changed, so a reconcile that finds everything in place
 * starts three read processes and no writer. Removal needs no state: the table name, the routing protocol mark
 * and the policy table range are all derived from owner and connection id.
 */
import { Code, StatusError } from "@nsm-ts/base/status";
import type { IpExecutor, IpLine } from "../executor.js";
import type { Netns } from "../netns.js";
import type { NftExecutor } from "../nft/executor.js";
import type { NftTable } from "../nft/table.js";
import {
  ENFORCE_PROTO,
  isPolicyTableOf,
  policyTableBase,
  type RoutingPlan,
  routeArgs,
  routeKey,
  ruleArgs,
  ruleKey,
  type WantedRule,
} from "./render-routes.js";
import { sgTableRef } from "./render-sg.js";

/** Who a connection's enforcement belongs to. */
export interface EnforcementOwner {
  readonly owner: string;
  readonly connectionId: string;
  /** The connection's interface in `netns`. */
  readonly ifName: string;
}

/** What one connection should have in its client netns. */
export interface EnforcementState {
  /** The security groups' table (`renderSecurityGroups`), or undefined for none (table removed). */
  readonly nft: NftTable | undefined;
  readonly routing: RoutingPlan;
}

type Json = Record<string, unknown>;

function parseList(out: string, what: string): Json[] {
  try {
    const v: unknown = JSON.parse(out.trim() === "" ? "[]" : out);
    return Array.isArray(v) ? (v.filter((x) => typeof x === "object" && x !== null) as Json[]) : [];
  } catch (err) {
    throw new StatusError(Code.Internal, `enforcement: ${what}: ip printed JSON that does not parse`, { cause: err });
  }
}

function portText(o: Json, k: "dport" | "sport"): string | undefined {
  const one = o[k];
  if (typeof one === "number") return String(one);
  const a = o[`${k}_start`];
  const b = o[`${k}_end`];
  return typeof a === "number" && typeof b === "number" ? (a === b ? String(a) : `${a}-${b}`) : undefined;
}

/** Our rules in `netns` (both families), as wanted-rule shapes for comparison. */
async function listOurRules(exec: IpExecutor, netns: Netns, base: number): Promise<WantedRule[]> {
  const out: WantedRule[] = [];
  for (const family of [4, 6] as const) {
    const list = parseList(await exec.query(netns, ["-json", `-${family}`, "rule", "show"], "list rules"), "list rules");
    for (const o of list) {
      const table = Number(o.table);
      if (String(o.protocol) !== String(ENFORCE_PROTO) || !isPolicyTableOf(base, table)) continue;
      const src = typeof o.src === "string" && o.src !== "all" ? `${o.src}/${Number(o.srclen ?? (family === 4 ? 32 : 128))}` : undefined;
      const dport = portText(o, "dport");
      const sport = portText(o, "sport");
      out.push({
        family,
        table,
        ...(src === undefined ? {} : { from: src }),
        ...(typeof o.ipproto === "string" ? { ipproto: o.ipproto } : {}),
        ...(dport === undefined ? {} : { dport }),
        ...(sport === undefined ? {} : { sport }),
      });
    }
  }
  return out;
}

interface ListedRoute {
  readonly key: string;
  readonly args: string[];
}

/** Our routes on `dev` in every table, with the arguments that delete each. */
async function listOurRoutes(exec: IpExecutor, netns: Netns, dev: string): Promise<ListedRoute[]> {
  const out = await exec.query(
    netns,
    ["-json", "route", "show", "table", "all", "proto", String(ENFORCE_PROTO), "dev", dev],
    "list routes",
  );
  return parseList(out, "list routes").map((o) => {
    const dstRaw = String(o.dst ?? "");
    const dst = dstRaw.includes("/") ? dstRaw : `${dstRaw}/${dstRaw.includes(":") ? 128 : 32}`;
    const table = o.table === undefined || o.table === "main" ? undefined : Number(o.table);
    const metric = typeof o.metric === "number" ? o.metric : 0;
    const gateway = typeof o.gateway === "string" ? o.gateway : undefined;
    return {
      key: routeKey({ dst, metric, ...(gateway === undefined ? {} : { gateway }), ...(table === undefined ? {} : { table }) }),
      args: ["route", "del", dst, "dev", dev, "metric", String(metric), ...(table === undefined ? [] : ["table", String(table)])],
    };
  });
}

/** Applies rule lines: IPv4 ones in one batch, IPv6 ones one by one (`ip -batch` cannot switch family per line). */
async function applyRules(exec: IpExecutor, netns: Netns, lines: IpLine[]): Promise<void> {
  const v4 = lines.filter((l) => l.args[0] === "-4").map((l) => ({ ...l, args: l.args.slice(1) }));
  await exec.apply(netns, v4);
  for (const l of lines.filter((x) => x.args[0] === "-6")) await exec.apply(netns, [l]);
}

/**
 * Makes `netns` hold `state` for the connection: table replaced (or removed), stale routes and rules deleted,
 * missing ones added. Idempotent; the interface must exist (routes need it). `parts` limits the work to what
 * changed (a group change needs one nft process, not the route and rule listings).
 */
export async function applyEnforcement(
  exec: IpExecutor,
  nft: NftExecutor,
  netns: Netns,
  who: EnforcementOwner,
  state: EnforcementState,
  parts: { readonly nft: boolean; readonly routing: boolean } = { nft: true, routing: true },
): Promise<void> {
  if (parts.nft) {
    if (state.nft !== undefined) await nft.apply(netns, state.nft);
    else await nft.delete(netns, sgTableRef(who.owner, who.connectionId));
  }
  if (!parts.routing) return;
  const base = policyTableBase(who.owner, who.connectionId);
  const [routes, rules] = await Promise.all([listOurRoutes(exec, netns, who.ifName), listOurRules(exec, netns, base)]);
  const wantedRoutes = new Map(state.routing.routes.map((r) => [routeKey(r), r]));
  const haveRoutes = new Set(routes.map((r) => r.key));
  const wantedRules = new Map(state.routing.rules.map((r) => [ruleKey(r), r]));
  const haveRules = new Map(rules.map((r) => [ruleKey(r), r]));
  const routeLines: IpLine[] = [
    ...routes.filter((r) => !wantedRoutes.has(r.key)).map((r) => ({ what: `delete stale route ${r.args[2]}`, args: r.args })),
    ...[...wantedRoutes].filter(([k]) => !haveRoutes.has(k)).map(([, r]) => ({ what: `route ${r.dst}`, args: routeArgs(r) })),
  ];
  const ruleLines: IpLine[] = [
    ...[...haveRules].filter(([k]) => !wantedRules.has(k)).map(([, r]) => ({ what: "delete stale rule", args: ruleArgs("del", r) })),
    ...[...wantedRules].filter(([k]) => !haveRules.has(k)).map(([, r]) => ({ what: `rule to table ${r.table}`, args: ruleArgs("add", r) })),
  ];
  // Routes before rules, so a new rule never points at an empty table.
  await exec.apply(netns, routeLines);
  await applyRules(exec, netns, ruleLines);
}

/**
 * Removes the connection's enforcement from `netns`: its table, its rules, and (while the interface still exists)
 * its routes. A netns or interface that is gone counts as removed.
 */
export async function removeEnforcement(exec: IpExecutor, nft: NftExecutor, netns: Netns, who: EnforcementOwner): Promise<void> {
  const gone = (err: unknown): boolean => err instanceof StatusError && err.code === Code.NotFound;
  try {
    await nft.delete(netns, sgTableRef(who.owner, who.connectionId));
    const rules = await listOurRules(exec, netns, policyTableBase(who.owner, who.connectionId));
    await applyRules(
      exec,
      netns,
      rules.map((r) => ({ what: "delete rule", args: ruleArgs("del", r) })),
    );
  } catch (err) {
    if (gone(err)) return;
    throw err;
  }
  try {
    const routes = await listOurRoutes(exec, netns, who.ifName);
    await exec.apply(
      netns,
      routes.map((r) => ({ what: "delete route", args: r.args })),
    );
  } catch (err) {
    if (!gone(err)) throw err;
  }
}
