/**
 * @nsm-ts/api: upstream-compatible NSM protobuf types. Import the proto package you need
 * (`@nsm-ts/api/networkservice`, `@nsm-ts/api/registry`, `@nsm-ts/api/ipam`) and the constants.
 */
export * from "./constants.js";
