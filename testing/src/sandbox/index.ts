/** @nsm-ts/sdk/tools/sandbox: an in-process mesh (registry + nodes of nsmgr and forwarder) for scenario tests. */

export { leftovers, resourceSnapshot } from "./leak-check.js";
export {
  createSandbox,
  type Sandbox,
  type SandboxClientOptions,
  type SandboxEndpoint,
  type SandboxEndpointOptions,
  type SandboxForwarder,
  type SandboxInterceptors,
  type SandboxNode,
  type SandboxOptions,
  type SandboxPart,
  type SandboxRegistry,
} from "./sandbox.js";
