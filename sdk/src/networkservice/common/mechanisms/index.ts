/**
 * mechanisms element (server: dispatch by mechanism type) with the per-type helpers `kernel` and `noop`
 * and the preference helpers clients use to offer mechanisms.
 */
export { newServer, type MechanismElements } from "./server.js";
export { prefer, preferNoop, preferKernel, isType } from "./prefer.js";
export * as kernel from "./kernel/index.js";
export * as noop from "./noop/index.js";
