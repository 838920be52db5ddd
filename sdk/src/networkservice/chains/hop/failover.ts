/**
 * failover (nsmgr and forwarder): a refresh of an established connection whose next hop has died must not wait
 * for the dead hop's registration to expire. When such a Request fails with Unavailable, it is retried once with
 * a fresh choice: the nsmgr retries with `state = RESELECT_REQUESTED` (discoverforwarder drops its sticky
 * forwarder and tries the others, the one on the path first); the forwarder retries with the endpoint name
 * cleared when it chose that endpoint itself (roundrobin then tries every candidate). An endpoint the client
 * named is never replaced. A failure of the registry (`discover.isRegistryFailure`, here or at a later hop) is not a
 * dead next hop and is not retried: a reselect could only close a working connection. Reads/writes: server
 * metadata. Place before discoverforwarder / discover.
 */
import { clone } from "@bufbuild/protobuf";
import { NetworkServiceRequestSchema, State } from "@nsm-ts/api/networkservice";
import { MetaKey } from "@nsm-ts/base/context";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { isForwarderFailure, isRegistryFailure } from "../../common/discover/index.js";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";

const establishedKey = new MetaKey<boolean>("failover.established");
const chosenKey = new MetaKey<boolean>("failover.chosen");

/** Which hop the element serves. */
export type FailoverMode = "nsmgr" | "forwarder";

/** Creates the failover element for an nsmgr or a forwarder chain. */
export function newFailover(mode: FailoverMode): NetworkServiceElement {
  return {
    name: `failover-${mode}`,
    async request(ctx, req, next) {
      const md = ctx.metadata.server;
      const conn = connectionOf(req);
      const established = md.get(establishedKey) === true;
      if (!established && mode === "forwarder") md.set(chosenKey, conn.networkServiceEndpointName === "");
      const retry = clone(NetworkServiceRequestSchema, req);
      try {
        const out = await next.request(ctx, req);
        md.set(establishedKey, true);
        return out;
      } catch (err) {
        const eligible = established && mode === "nsmgr" ? true : established && md.get(chosenKey) === true;
        if (!eligible || ctx.signal.aborted || !isStatusError(err, Code.Unavailable) || isRegistryFailure(err) || isForwarderFailure(err))
          throw err;
        const rc = connectionOf(retry);
        if (mode === "nsmgr") rc.state = State.RESELECT_REQUESTED;
        else rc.networkServiceEndpointName = "";
        ctx.log.info({ connId: conn.id, err }, `failover: the next hop of an established connection failed, choosing again`);
        const out = await next.request(ctx, retry);
        md.set(establishedKey, true);
        return out;
      }
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        ctx.metadata.server.delete(establishedKey);
        ctx.metadata.server.delete(chosenKey);
      }
    },
  };
}
