/** Registry chain core: the generic element contract and composition. */
export * from "./types.js";
export * from "./chain.js";
