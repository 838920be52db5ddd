/** Registry chain core: the generic element contract and composition. */

export { registryChain, registryHandler, registryPassThrough, registryTail } from "./chain.js";
export type {
  FindQuery,
  FindResult,
  NsElement,
  NseElement,
  NseHandler,
  NsHandler,
  RegistryElement,
  RegistryEntry,
  RegistryHandler,
} from "./types.js";
