/** Registry over gRPC: serving chains (`serveRegistry`) and the call context of incoming calls. */
export { serveRegistry, contextFromCall, type RegistryServeOptions } from "./server.js";
