/** @nsm-ts/sdk/registry: registry chain core, elements, stores and chains. */
export * from "./core/index.js";
