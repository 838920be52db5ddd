/** KERNEL mechanism: builders, accessors and the client element offering it. */
export {
  mechanism,
  newClient,
  isKernel,
  interfaceNameOf,
  netnsUrlOf,
  type KernelMechanismOptions,
  type KernelClientOptions,
} from "./mechanism.js";
