/** Registry over gRPC: serving chains (`serveRegistry`) and the call context of incoming calls. */
export { type RegistryServeOptions, serveRegistry } from "./server.js";
