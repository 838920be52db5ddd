/** refresh element: re-Requests a connection before its tokens expire. See README.md. */
export { newClient, refreshPlan, type RefreshOptions, type RefreshPlan } from "./client.js";
