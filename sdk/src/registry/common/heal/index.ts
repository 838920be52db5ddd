/** heal (registry): watch our own registration and restore it. See heal.ts. */
export { type HealOptions, newClient } from "./heal.js";
