/** refresh (registry): re-register at ⅔ of the remaining lifetime. See refresh.ts. */
export { newClient, type RefreshOptions } from "./refresh.js";
