/**
 * mechanisms element (server: dispatch by mechanism type) with the per-type helpers `kernel` and `noop`
 * and the preference helpers clients use to offer mechanisms.
 */

export * as kernel from "./kernel/index.js";
export * as noop from "./noop/index.js";
export { isType, prefer, preferKernel, preferNoop } from "./prefer.js";
export { type MechanismElements, newServer } from "./server.js";
