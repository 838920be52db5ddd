/** @nsm-ts/sdk/tools/sandbox: an in-process mesh (registry + nodes of nsmgr and forwarder) for scenario tests. */
export {
  createSandbox,
  type Sandbox,
  type SandboxOptions,
  type SandboxPart,
  type SandboxRegistry,
  type SandboxNode,
  type SandboxForwarder,
  type SandboxEndpoint,
  type SandboxEndpointOptions,
  type SandboxClientOptions,
  type SandboxInterceptors,
} from "./sandbox.js";
export { resourceSnapshot, leftovers } from "./leak-check.js";
