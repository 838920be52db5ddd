/**
 * Serving `nsmts.intents.v1`: on an nsm-ts gRPC server (`registerIntentServices`) and, from the same handlers,
 * the Connect protocol over HTTP/1.1 (`createConnectHandler`), so REST-style clients can
 * `curl -H 'content-type: application/json' -d '{…}' http://host:port/nsmts.intents.v1.IntentService/CreateIntent`.
 * Connect also answers gRPC-Web there. Status errors keep their code on both paths.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { type Code as ConnectCode, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ClusterService, IntentService, TrafficGroupService } from "@nsm-ts/api/intents";
import type { NsmServer } from "@nsm-ts/base/grpc";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { Code, toStatusError } from "@nsm-ts/base/status";
import { intentHandlers } from "./api.js";
import type { IntentObjects } from "./objects.js";

/** Serves the three services on an nsm-ts gRPC server. */
export function registerIntentServices(server: NsmServer, objects: IntentObjects): void {
  const h = intentHandlers(objects);
  server.addService(ClusterService, h.clusters);
  server.addService(TrafficGroupService, h.groups);
  server.addService(IntentService, h.intents);
}

/** A status error as Connect reports it (Connect's codes are gRPC's numbers); a non-status throw is Internal. */
function toConnect(err: unknown, log: Logger): ConnectError {
  if (err instanceof ConnectError) return err;
  const s = toStatusError(err);
  if (s.code === Code.Internal) log.error({ err }, "traffic-controller: internal error in a Connect call");
  return new ConnectError(s.message, s.code as number as ConnectCode);
}

type Fn = (req: never, ctx: { signal: AbortSignal }) => unknown;

function wrap<T extends Record<string, Fn>>(impl: T, log: Logger): T {
  const out: Record<string, Fn> = {};
  for (const [name, fn] of Object.entries(impl)) {
    out[name] = (req, ctx) => {
      let res: unknown;
      try {
        res = fn(req, ctx);
      } catch (err) {
        throw toConnect(err, log);
      }
      if (res instanceof Promise) return res.catch((err: unknown) => Promise.reject(toConnect(err, log)));
      const it = res as AsyncIterable<unknown>;
      return (async function* () {
        try {
          yield* it;
        } catch (err) {
          throw toConnect(err, log);
        }
      })();
    };
  }
  return out as T;
}

/** A Node HTTP handler serving the Connect protocol (JSON and binary) and gRPC-Web for the three services. */
export function createConnectHandler(
  objects: IntentObjects,
  opts: { log?: Logger } = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const log = opts.log ?? silentLogger;
  const h = intentHandlers(objects);
  return connectNodeAdapter({
    routes: (router: ConnectRouter) => {
      router.service(ClusterService, wrap(h.clusters, log));
      router.service(TrafficGroupService, wrap(h.groups, log));
      router.service(IntentService, wrap(h.intents, log));
    },
  });
}
