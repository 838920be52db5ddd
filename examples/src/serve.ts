/** Serving an endpoint: listen, then register it and its network service through the node's nsmgr. */
import { createServer } from "@nsm-ts/base/grpc";
import type { TokenGenerator } from "@nsm-ts/base/token";
import type { Endpoint } from "@nsm-ts/sdk/networkservice";
import { createRegistrar } from "@nsm-ts/sdk/registry";

/** Options of `serve`. */
export interface ServeOptions {
  endpoint: Endpoint;
  /** The network service it provides. */
  service: string;
  /** Where to listen: the URL the nsmgr will dial (unix:///path or tcp://host:port). */
  listenOn: string;
  /** The node's nsmgr, which forwards the registration to the registry. */
  nsmgrUrl: string;
  tokenGenerator: TokenGenerator;
}

/** Serves the endpoint and keeps it registered (refreshed, re-registered after a restart); returns a stop function. */
export async function serve(o: ServeOptions): Promise<() => Promise<void>> {
  const server = createServer();
  o.endpoint.serve(server);
  const url = await server.listen(o.listenOn);
  const registrar = createRegistrar(o.nsmgrUrl, { tokenGenerator: o.tokenGenerator });
  await registrar.registerService({ name: o.service, payload: "ETHERNET" });
  await registrar.registerEndpoint({ name: o.endpoint.name, url, networkServiceNames: [o.service] });
  return async () => {
    await registrar.unregisterEndpoint(o.endpoint.name); // first, so no new request picks us while we stop
    await registrar.close();
    await server.close();
  };
}
