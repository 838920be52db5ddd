/**
 * @nsm-ts/sdk/networkservice: the chain core and every networkservice element, one namespace per element
 * (`updatepath.newServer(name)`, `begin.newClient()`, …), as upstream's folders are named.
 */
export * from "./core/index.js";
export * as updatepath from "./common/updatepath/index.js";
export * as begin from "./common/begin/index.js";
export * as metadata from "./common/metadata/index.js";
export * as count from "./utils/count/index.js";
export * as inject from "./utils/inject/index.js";
export * as checks from "./utils/checks/index.js";
