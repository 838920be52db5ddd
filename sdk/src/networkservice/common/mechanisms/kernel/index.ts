/** KERNEL mechanism: builders, accessors and the client element offering it. */
export {
  interfaceNameOf,
  isKernel,
  type KernelClientOptions,
  type KernelMechanismOptions,
  mechanism,
  netnsUrlOf,
  newClient,
} from "./mechanism.js";
