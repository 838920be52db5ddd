/**
 * Serving `nsmts.intents.v1`: on an nsm-ts gRPC server (`registerIntentServices`) and, from the same handlers,
 * the Connect protocol over HTTP/1.1 (`createConnectHandler`), so REST-style clients can
 * `curl -H 'content-type: application/json' -d '{…}' http://host:port/nsmts.intents.v1.IntentService/CreateIntent`.
 * Connect also answers gRPC-Web there. Status errors keep their code on both paths.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { ClusterService, IntentService, TrafficGroupService } from "@nsm-ts/api/intents";
import { connectRoute, createConnectHandler as createConnectHandlerFor } from "@nsm-ts/base/connect";
import type { NsmServer } from "@nsm-ts/base/grpc";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { intentHandlers } from "./api.js";
import type { IntentObjects } from "./objects.js";

/** Serves the three services on an nsm-ts gRPC server. */
export function registerIntentServices(server: NsmServer, objects: IntentObjects): void {
  const h = intentHandlers(objects);
  server.addService(ClusterService, h.clusters);
  server.addService(TrafficGroupService, h.groups);
  server.addService(IntentService, h.intents);
}

/** A Node HTTP handler serving the Connect protocol (JSON and binary) and gRPC-Web for the three services. */
export function createConnectHandler(
  objects: IntentObjects,
  opts: { log?: Logger } = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const h = intentHandlers(objects);
  return createConnectHandlerFor(
    [connectRoute(ClusterService, h.clusters), connectRoute(TrafficGroupService, h.groups), connectRoute(IntentService, h.intents)],
    { log: opts.log ?? silentLogger, what: "traffic-controller" },
  );
}
