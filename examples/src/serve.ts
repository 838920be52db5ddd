/** Serving an endpoint: listen, then register it and its network service through the node's nsmgr. */
import { create } from "@bufbuild/protobuf";
import { NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import { createServer, dial } from "@nsm-ts/base/grpc";
import type { TokenGenerator } from "@nsm-ts/base/token";
import { CallContext, type Endpoint } from "@nsm-ts/sdk/networkservice";
import { createRegistryClient } from "@nsm-ts/sdk/registry";

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

/** Serves the endpoint and keeps it registered (refreshed, re-registered after an nsmgr restart); returns a stop function. */
export async function serve(o: ServeOptions): Promise<() => Promise<void>> {
  const server = createServer();
  o.endpoint.register(server);
  const url = await server.listen(o.listenOn);
  const lifetime = new AbortController();
  const nsmgr = dial(o.nsmgrUrl);
  const nses = createRegistryClient("nse", nsmgr, { tokenGenerator: o.tokenGenerator, signal: lifetime.signal, heal: true });
  const services = createRegistryClient("ns", nsmgr, { tokenGenerator: o.tokenGenerator, signal: lifetime.signal });
  await services.register(CallContext.create(), create(NetworkServiceSchema, { name: o.service, payload: "ETHERNET" }));
  const entry = create(NetworkServiceEndpointSchema, { name: o.endpoint.name, url, networkServiceNames: [o.service] });
  const registered = await nses.register(CallContext.create(), entry);
  return async () => {
    await nses.unregister(CallContext.create(), registered); // first, so no new request picks us while we stop
    lifetime.abort();
    nsmgr.close();
    await server.close();
  };
}
