/** Registry stores: one interface, an in-memory and an etcd implementation, and Find's template matching. */

export * from "./etcd.js";
export * from "./match.js";
export * from "./memory.js";
export * from "./types.js";
