/** Registry chain core: the generic element contract and composition. */

export * from "./chain.js";
export * from "./types.js";
