/** Chain core: element contract, composition, per-call context and per-connection metadata. */

export * from "./chain.js";
export * from "./context.js";
export * from "./metadata.js";
export * from "./serve.js";
export * from "./trace.js";
export * from "./types.js";
