/** heal (registry): watch our own registration and restore it. See heal.ts. */
export { newClient, type HealOptions } from "./heal.js";
