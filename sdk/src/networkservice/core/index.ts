/** Chain core: the element contract, composition (`chain`, `handler`) and serving a chain over gRPC. */

export { chain, connectionOf, handler, passThrough, tail } from "./chain.js";
export { type ServeOptions, serveNetworkService } from "./serve.js";
export type {
  MonitorConnectionServer,
  NetworkServiceClient,
  NetworkServiceElement,
  NetworkServiceHandler,
  NetworkServiceServer,
} from "./types.js";
