/** refresh element: re-Requests a connection before its tokens expire. See README.md. */
export { newClient, type RefreshOptions, type RefreshPlan, refreshPlan } from "./client.js";
