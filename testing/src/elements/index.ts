/** Test elements for networkservice chains: error and context injection, counters, in-chain assertions. */

export { type CheckHooks, newCheck, StepRecorder } from "./checks/index.js";
export { type Counter, newCounter } from "./count/index.js";
export { type FailOn, type InjectErrorOptions, newContextElement, newErrorElement } from "./inject/index.js";
