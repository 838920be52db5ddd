/**
 * discover: finds the endpoints that may serve a Request and hands them to the elements after it (usually
 * `roundrobin`) as `candidatesKey`. A new connection gets the network service's endpoints filtered by its
 * matches (source selector against the connection labels, destination selectors against endpoint labels,
 * `{{.label}}` templates, fallthrough); a request naming an endpoint gets that endpoint, or NotFound at once when
 * it is not registered. When the service or its endpoints are not registered yet, it watches the registry until
 * something appears or the request deadline passes. While the registry cannot answer, a refresh keeps the endpoint
 * it discovered before (the registry is not on the data path); a Request that needs the registry fails with
 * `Unavailable` naming it (marked `REGISTRY_FAILURE_TRAILER`).
 *
 * Reads: `connection.network_service`, `.payload`, `.labels`, `.network_service_endpoint_name`.
 * Writes: context value `candidatesKey`; `connection.payload` (from the service, when empty); server
 * metadata (the endpoint it discovered, so that a refresh whose endpoint has gone discovers anew).
 * Place after `metadata` and before `roundrobin`.
 */

import { create } from "@bufbuild/protobuf";
import type { NetworkService, NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import type { CallContext } from "@nsm-ts/base/context";
import { ContextKey, MetaKey } from "@nsm-ts/base/context";
import { Code, fail } from "@nsm-ts/base/status";
import type { NseHandler, NsHandler } from "../../../registry/core/index.js";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";
import { askRegistry, collect, findUntil, isRegistryFailure, waitBudgetMs } from "./find.js";
import { isExpired, matchEndpoints } from "./match.js";

/** The endpoints discover found for a Request, in registry order, and the network service they serve. */
export interface Candidates {
  /** The network service, when the endpoints came from its matches (absent for a named endpoint). */
  networkService?: NetworkService;
  /** Candidate endpoints; never empty when set by discover. */
  endpoints: NetworkServiceEndpoint[];
}

/** Context key under which discover passes `Candidates` to the elements after it. */
export const candidatesKey = new ContextKey<Candidates>("discover.candidates");

/** The candidates discover set in `ctx`, or undefined. */
export function candidatesOf(ctx: CallContext): Candidates | undefined {
  return candidatesKey.get(ctx);
}

/** The registries discover reads. */
export interface DiscoverRegistries {
  /** Endpoint registry (Find with watch). */
  nse: NseHandler;
  /** Network service registry (Find with watch). */
  ns: NsHandler;
}

/** Options of discover. */
export interface DiscoverOptions {
  /** How long to wait for registrations when the request has no deadline; default 0 (fail at once). */
  waitWithoutDeadlineMs?: number;
}

/** The endpoint discover chose for a connection, kept for refreshes while the registry cannot answer. */
const discoveredKey = new MetaKey<NetworkServiceEndpoint>("discover.endpoint");

/** Creates the discover server element. */
export function newServer(registries: DiscoverRegistries, opts: DiscoverOptions = {}): NetworkServiceElement {
  const fallbackMs = opts.waitWithoutDeadlineMs ?? 0;
  const live = (ctx: CallContext, list: NetworkServiceEndpoint[]): NetworkServiceEndpoint[] =>
    list.filter((e) => !isExpired(e, ctx.clock.now()));

  const lookup = async (ctx: CallContext, name: string): Promise<NetworkServiceEndpoint | undefined> => {
    const list = await collect(registries.nse.find(ctx, { template: create(NetworkServiceEndpointSchema, { name }), watch: false }));
    return live(ctx, list).find((e) => e.name === name);
  };

  return {
    name: "discover",
    async request(ctx, req, next) {
      const conn = connectionOf(req);
      const named = conn.networkServiceEndpointName;
      if (named) {
        const known = ctx.metadata.server.get(discoveredKey);
        const what = `the look-up of network service endpoint "${named}"`;
        if (known?.name === named) {
          // A refresh of an endpoint we discovered: keep it while it is registered, else discover anew.
          let nse: NetworkServiceEndpoint | undefined;
          try {
            nse = await askRegistry(ctx, "discover", what, () => lookup(ctx, named));
          } catch (err) {
            if (!isRegistryFailure(err)) throw err;
            ctx.log.warn(
              { connId: conn.id, nse: named, err },
              "discover: the registry cannot answer, keeping the endpoint the connection uses",
            );
            return next.request(ctx.with(candidatesKey, { endpoints: [known] }), req);
          }
          if (nse) {
            ctx.metadata.server.set(discoveredKey, nse);
            return next.request(ctx.with(candidatesKey, { endpoints: [nse] }), req);
          }
          ctx.log.info({ connId: conn.id, nse: named }, "discover: the selected endpoint is no longer registered, selecting another");
          conn.networkServiceEndpointName = "";
          ctx.metadata.server.delete(discoveredKey);
        } else {
          // As upstream: a named endpoint that is not registered is NotFound at once, not awaited. A client healing
          // towards a dead endpoint then learns it is gone in one round trip and reselects.
          const nse =
            (await askRegistry(ctx, "discover", what, () => lookup(ctx, named))) ??
            fail(Code.NotFound, `discover: network service endpoint "${named}" (network_service_endpoint_name) is not found`);
          const out = await next.request(ctx.with(candidatesKey, { endpoints: [nse] }), req);
          // Kept like an endpoint this hop discovered (the first Request here may be a heal after this hop restarted):
          // its refreshes then survive a registry that cannot answer or that restarted empty, as above.
          if (out.networkServiceEndpointName === named) ctx.metadata.server.set(discoveredKey, nse);
          return out;
        }
      }

      const service = conn.networkService || fail(Code.InvalidArgument, "discover: connection.network_service must not be empty");
      const ns =
        (await askRegistry(ctx, "discover", `the look-up of network service "${service}"`, () =>
          findUntil(
            registries.ns,
            ctx,
            create(NetworkServiceSchema, { name: service, payload: conn.payload }),
            (list) => list.find((s) => s.name === service),
            waitBudgetMs(ctx, fallbackMs),
          ),
        )) ?? fail(Code.NotFound, `discover: network service "${service}" (network_service) is not found`);
      if (!conn.payload) conn.payload = ns.payload;

      const endpoints =
        (await askRegistry(ctx, "discover", `the look-up of the endpoints of network service "${service}"`, () =>
          findUntil(
            registries.nse,
            ctx,
            create(NetworkServiceEndpointSchema, { networkServiceNames: [service] }),
            (list) => {
              const found = matchEndpoints(conn.labels, ns, live(ctx, list));
              return found.length > 0 ? found : undefined;
            },
            waitBudgetMs(ctx, fallbackMs),
          ),
        )) ??
        fail(
          Code.NotFound,
          `discover: no endpoint of network service "${service}" matches the connection labels ${JSON.stringify(conn.labels)}`,
        );

      const out = await next.request(ctx.with(candidatesKey, { networkService: ns, endpoints }), req);
      const chosen = endpoints.find((e) => e.name === out.networkServiceEndpointName);
      if (chosen) ctx.metadata.server.set(discoveredKey, chosen);
      return out;
    },

    async close(ctx, conn, next) {
      let c = ctx;
      const named = conn.networkServiceEndpointName;
      if (named) {
        try {
          const nse = await lookup(ctx, named);
          if (nse) c = ctx.with(candidatesKey, { endpoints: [nse] });
          else ctx.log.info({ connId: conn.id, nse: named }, "discover: no endpoint on close, closing without a next hop");
        } catch (err) {
          // Without the registry the Close still reaches the endpoint the connection uses.
          const known = ctx.metadata.server.get(discoveredKey);
          if (known?.name === named) c = ctx.with(candidatesKey, { endpoints: [known] });
          ctx.log.warn({ connId: conn.id, nse: named, err }, "discover: endpoint look-up on close failed");
        }
      }
      try {
        await next.close(c, conn);
      } finally {
        ctx.metadata.server.delete(discoveredKey);
      }
    },
  };
}
