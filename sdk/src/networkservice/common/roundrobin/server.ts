/**
 * roundrobin: picks the endpoint for a Request among the candidates `discover` found, rotating per network
 * service, and tries the next candidate when the chosen one fails, so one dead endpoint does not fail the
 * request. The failures are reported together when every candidate failed: `Unavailable`, or the one refusal code
 * (PermissionDenied, …) when every candidate refused the request alike. When the caller's deadline passes (or
 * it cancels) the Request ends with `DeadlineExceeded` (or `Canceled`) instead, blaming no endpoint.
 *
 * Reads: context value `discover.candidatesKey`. Writes: `connection.network_service_endpoint_name` and the
 * context value `clienturl.urlKey` (the chosen endpoint's URL) for `connect`. Place right after `discover`.
 */
import { clone } from "@bufbuild/protobuf";
import { NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { Code, fail } from "@nsm-ts/base/status";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";
import { urlKey } from "../clienturl/index.js";
import { allCandidatesFailed, callerGone, candidatesKey } from "../discover/index.js";

function urlOf(nse: NetworkServiceEndpoint): URL {
  try {
    return new URL(nse.url);
  } catch {
    return fail(Code.InvalidArgument, `roundrobin: endpoint "${nse.name}" has an invalid url "${nse.url}"`);
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Creates the roundrobin server element; each instance keeps its own rotation per network service. */
export function newServer(): NetworkServiceElement {
  const rotation = new Map<string, number>();
  return {
    name: "roundrobin",
    async request(ctx, req, next) {
      const conn = connectionOf(req);
      const cands =
        candidatesKey.get(ctx) ?? fail(Code.Internal, "roundrobin: no candidates in the context (place discover before roundrobin)");
      const list = cands.endpoints;
      if (list.length === 0) fail(Code.NotFound, `roundrobin: no candidate endpoints for network service "${conn.networkService}"`);
      const key = cands.networkService?.name ?? conn.networkService;
      // Only a choice among a service's endpoints rotates; a named endpoint (a refresh, an explicit request)
      // must not shift the rotation for everyone else.
      const rotate = cands.networkService !== undefined;
      const failures: string[] = [];
      const causes: unknown[] = [];
      for (let i = 0; i < list.length; i++) {
        const before = callerGone(ctx, "roundrobin");
        if (before) throw before;
        let n = i;
        if (rotate) {
          n = rotation.get(key) ?? 0;
          rotation.set(key, (n + 1) % Number.MAX_SAFE_INTEGER);
        }
        const nse = list[n % list.length] as NetworkServiceEndpoint;
        // Each attempt gets its own copy: a failed attempt must not leak its changes into the next one.
        const attempt = clone(NetworkServiceRequestSchema, req);
        connectionOf(attempt).networkServiceEndpointName = nse.name;
        try {
          const out = await next.request(ctx.with(urlKey, urlOf(nse)), attempt);
          out.networkServiceEndpointName = out.networkServiceEndpointName || nse.name;
          return out;
        } catch (err) {
          // The caller ran out of time (or left): its own end, not this endpoint's failure.
          const gone = callerGone(ctx, "roundrobin", err);
          if (gone) throw gone;
          ctx.log.info({ connId: conn.id, nse: nse.name, err }, "roundrobin: candidate failed, trying the next one");
          failures.push(`${nse.name}: ${message(err)}`);
          causes.push(err);
        }
      }
      throw allCandidatesFailed(
        `roundrobin: all ${failures.length} of ${list.length} candidates of network service "${key}" failed: ${failures.join("; ")}`,
        causes,
        "roundrobin",
      );
    },
    async close(ctx, conn, next) {
      const nse = candidatesKey.get(ctx)?.endpoints.find((e) => e.name === conn.networkServiceEndpointName);
      let c = ctx;
      if (nse) {
        try {
          c = ctx.with(urlKey, urlOf(nse));
        } catch (err) {
          ctx.log.warn({ connId: conn.id, err }, "roundrobin: closing without a next-hop URL");
        }
      }
      await next.close(c, conn);
    },
  };
}
