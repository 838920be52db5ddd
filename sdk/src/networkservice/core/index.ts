/** Chain core: element contract, composition, per-call context and per-connection metadata. */

export * from "@nsm-ts/base/context";
export * from "@nsm-ts/base/context";
export * from "@nsm-ts/base/context";
export * from "./chain.js";
export * from "./serve.js";
export * from "./types.js";
