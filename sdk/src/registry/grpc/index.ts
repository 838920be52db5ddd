/** Registry over gRPC: serving chains (`serveRegistry`) and the call context of incoming calls. */
export { contextFromCall, type RegistryServeOptions, serveRegistry } from "./server.js";
