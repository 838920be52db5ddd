/** @nsm-ts/testing/sandbox: an in-process mesh (registry + nodes of nsmgr and forwarder) for scenario tests. */

export { createSandbox } from "./builder.js";
export { leftovers, resourceSnapshot } from "./leak-check.js";
export type { SandboxClientOptions, SandboxDomainOptions, SandboxEndpointOptions, SandboxInterceptors, SandboxOptions } from "./options.js";
export type { Sandbox, SandboxDomainParts, SandboxEndpoint, SandboxForwarder, SandboxNode, SandboxPart, SandboxRegistry } from "./types.js";
