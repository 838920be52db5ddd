/**
 * discoverforwarder (nsmgr side): chooses the forwarder that carries a connection. Candidates are the
 * endpoints registered for the forwarder service (`forwarder` by default) whose labels match: the
 * metadata labels of the network service's first Match that fits the connection labels, else `p2p=true`.
 * The choice sticks to the connection across refreshes (server metadata) and is dropped on
 * RESELECT_REQUESTED or once that forwarder is no longer registered. While the registry cannot answer, a refresh
 * keeps the chosen forwarder at the URL it last had (the registry is not on the data path); a Request that has to
 * choose fails with `Unavailable` naming the registry (marked `REGISTRY_FAILURE_TRAILER`). Within one request, a
 * failing candidate is skipped for the next one; the forwarder already on the connection's path is tried first.
 * When the caller's deadline passes (or it cancels) the Request ends with `DeadlineExceeded` (or `Canceled`) and
 * the forwarder tried last is not counted as failed.
 *
 * Reads: `connection.labels`, `.network_service`, `.state`, `.path`. Writes: context value
 * `clienturl.urlKey`, server metadata. Place after `metadata`, before the client part that dials the forwarder.
 */
import { clone, create } from "@bufbuild/protobuf";
import { FORWARDER_NETWORK_SERVICE, Label } from "@nsm-ts/api/constants";
import { NetworkServiceRequestSchema, State } from "@nsm-ts/api/networkservice";
import { type NetworkService, type NetworkServiceEndpoint, NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import type { CallContext } from "@nsm-ts/base/context";
import { MetaKey } from "@nsm-ts/base/context";
import { Code, fail } from "@nsm-ts/base/status";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";
import { urlKey } from "../clienturl/index.js";
import { isNextHopUnreachable } from "../connect/index.js";
import {
  allCandidatesFailed,
  askRegistry,
  callerGone,
  collect,
  type DiscoverRegistries,
  findUntil,
  forwardersUnreachable,
  isExpired,
  isRegistryFailure,
  isSubset,
  waitBudgetMs,
} from "../discover/index.js";

/** Options of discoverforwarder. */
export interface DiscoverForwarderOptions {
  /** Network service forwarders register under; default `forwarder`. */
  forwarderServiceName?: string;
  /** Labels a forwarder must have when no Match gives any; default `{ p2p: "true" }`. */
  defaultLabels?: Readonly<Record<string, string>>;
  /** How long to wait for a forwarder to register when the request has no deadline; default 0. */
  waitWithoutDeadlineMs?: number;
}

/** The forwarder a connection uses: its name, and its URL for when the registry cannot be asked. */
interface Chosen {
  name: string;
  url: string;
}

const chosenKey = new MetaKey<Chosen>("discoverforwarder.chosen");

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The labels forwarders must carry for a connection with `connLabels` to network service `ns`. */
export function forwarderLabels(
  connLabels: Readonly<Record<string, string>>,
  ns: NetworkService | undefined,
  fallback: Readonly<Record<string, string>>,
): Readonly<Record<string, string>> {
  for (const match of ns?.matches ?? []) {
    if (!isSubset(connLabels, match.sourceSelector, connLabels)) continue;
    const labels = match.metadata?.labels ?? {};
    return Object.keys(labels).length > 0 ? labels : fallback;
  }
  return fallback;
}

/** Creates the discoverforwarder server element. */
export function newServer(registries: DiscoverRegistries, opts: DiscoverForwarderOptions = {}): NetworkServiceElement {
  const service = opts.forwarderServiceName ?? FORWARDER_NETWORK_SERVICE;
  const fallback = opts.defaultLabels ?? { [Label.P2P]: "true" };
  const fallbackMs = opts.waitWithoutDeadlineMs ?? 0;

  const usable = (ctx: CallContext, f: NetworkServiceEndpoint): boolean =>
    !isExpired(f, ctx.clock.now()) && f.networkServiceNames.includes(service);
  const lookup = async (ctx: CallContext, name: string): Promise<NetworkServiceEndpoint | undefined> => {
    const list = await collect(registries.nse.find(ctx, { template: create(NetworkServiceEndpointSchema, { name }), watch: false }));
    return list.find((f) => f.name === name && usable(ctx, f));
  };
  const urlOf = (f: NetworkServiceEndpoint): URL => {
    try {
      return new URL(f.url);
    } catch {
      return fail(Code.InvalidArgument, `discoverforwarder: forwarder "${f.name}" has an invalid url "${f.url}"`);
    }
  };
  const pathNext = (conn: ReturnType<typeof connectionOf>): string | undefined => {
    const p = conn.path;
    return p ? p.pathSegments[p.index + 1]?.name : undefined;
  };

  return {
    name: "discoverforwarder",
    async request(ctx, req, next) {
      const conn = connectionOf(req);
      const md = ctx.metadata.server;
      if (conn.state === State.RESELECT_REQUESTED && md.delete(chosenKey) !== undefined) {
        ctx.log.info({ connId: conn.id }, "discoverforwarder: reselect requested, dropping the chosen forwarder");
      }
      const sticky = md.get(chosenKey);
      if (sticky) {
        let f: NetworkServiceEndpoint | undefined;
        try {
          f = await askRegistry(ctx, "discoverforwarder", `the look-up of forwarder "${sticky.name}"`, () => lookup(ctx, sticky.name));
        } catch (err) {
          if (!isRegistryFailure(err)) throw err;
          // The registry is not on the data path: its outage must not move a working connection.
          ctx.log.warn(
            { connId: conn.id, forwarder: sticky.name, err },
            "discoverforwarder: the registry cannot answer, keeping the forwarder the connection uses",
          );
          return next.request(ctx.with(urlKey, new URL(sticky.url)), req);
        }
        if (f) {
          const url = urlOf(f);
          if (f.url !== sticky.url) md.set(chosenKey, { name: f.name, url: f.url });
          return next.request(ctx.with(urlKey, url), req);
        }
        ctx.log.info(
          { connId: conn.id, forwarder: sticky.name },
          "discoverforwarder: the chosen forwarder is no longer registered, choosing another",
        );
        md.delete(chosenKey);
      }

      const nsList = conn.networkService
        ? await askRegistry(ctx, "discoverforwarder", `the look-up of network service "${conn.networkService}"`, () =>
            collect(registries.ns.find(ctx, { template: create(NetworkServiceSchema, { name: conn.networkService }), watch: false })),
          )
        : [];
      const want = forwarderLabels(
        conn.labels,
        nsList.find((s) => s.name === conn.networkService),
        fallback,
      );
      const candidates =
        (await askRegistry(ctx, "discoverforwarder", `the look-up of the forwarders of network service "${service}"`, () =>
          findUntil(
            registries.nse,
            ctx,
            create(NetworkServiceEndpointSchema, { networkServiceNames: [service] }),
            (list) => {
              const ok = list.filter((f) => usable(ctx, f) && isSubset(f.networkServiceLabels[service]?.labels ?? {}, want, conn.labels));
              return ok.length > 0 ? ok : undefined;
            },
            waitBudgetMs(ctx, fallbackMs),
          ),
        )) ??
        fail(
          Code.NotFound,
          `discoverforwarder: no forwarder of network service "${service}" with labels ${JSON.stringify(want)} is registered`,
        );

      // After a restart of this nsmgr the connection's path still names the forwarder carrying its data: try it first.
      const previous = pathNext(conn);
      const ordered = [...candidates].sort((a, b) => Number(b.name === previous) - Number(a.name === previous));

      const failures: string[] = [];
      const causes: unknown[] = [];
      for (const f of ordered) {
        const before = callerGone(ctx, "discoverforwarder");
        if (before) throw before;
        const attempt = clone(NetworkServiceRequestSchema, req);
        try {
          const out = await next.request(ctx.with(urlKey, urlOf(f)), attempt);
          md.set(chosenKey, { name: f.name, url: f.url });
          return out;
        } catch (err) {
          // The caller ran out of time (or left): its own end, not this forwarder's failure.
          const gone = callerGone(ctx, "discoverforwarder", err);
          if (gone) throw gone;
          ctx.log.info({ connId: conn.id, forwarder: f.name, err }, "discoverforwarder: forwarder failed, trying the next one");
          failures.push(`${f.name}: ${message(err)}`);
          causes.push(err);
        }
      }
      const text = `discoverforwarder: all ${failures.length} forwarders failed: ${failures.join("; ")}`;
      // None answered at all (killed, restarting): the endpoint was never asked, and another endpoint would not help.
      if (causes.length > 0 && causes.every(isNextHopUnreachable)) throw forwardersUnreachable(text, causes);
      throw allCandidatesFailed(text, causes, "discoverforwarder");
    },

    async close(ctx, conn, next) {
      const md = ctx.metadata.server;
      const chosen = md.get(chosenKey);
      const name = chosen?.name ?? pathNext(conn);
      let c = ctx;
      if (name) {
        try {
          const f = await lookup(ctx, name);
          if (f) c = ctx.with(urlKey, urlOf(f));
          else ctx.log.info({ connId: conn.id, forwarder: name }, "discoverforwarder: forwarder not registered on close");
        } catch (err) {
          // Without the registry the Close still reaches the forwarder the connection uses.
          if (chosen) c = ctx.with(urlKey, new URL(chosen.url));
          ctx.log.warn({ connId: conn.id, forwarder: name, err }, "discoverforwarder: forwarder look-up on close failed");
        }
      }
      try {
        await next.close(c, conn);
      } finally {
        md.delete(chosenKey);
      }
    },
  };
}
