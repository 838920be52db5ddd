/**
 * The SDK's standard chain this program is built from. Temporary indirection: `@nsm-ts/sdk/networkservice` does not
 * export the chains yet; once it does, this file re-exports from there and nothing else changes.
 */
export { endpoint } from "../../sdk/dist/networkservice/chains/index.js";
