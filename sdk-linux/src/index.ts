/**
 * @nsm-ts/sdk-linux: the Linux kernel data plane — network-namespace handles and typed link, address, route,
 * neighbour and VXLAN operations delivered through batched `ip` calls.
 */
export * from "./exec.js";
export * from "./executor.js";
export * from "./mechanisms/index.js";
export * from "./names.js";
export * from "./netns.js";
export * from "./ops/batch.js";
export * from "./ops/owned.js";
export * from "./ops/read.js";
export * from "./ops/specs.js";
export * from "./validate.js";
