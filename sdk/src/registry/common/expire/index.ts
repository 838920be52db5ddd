/** expire (registry): registrations end at min(requested, token expiry, now + expire period). */
export { newServer, DEFAULT_EXPIRE_PERIOD_MS, type ExpireOptions } from "./expire.js";
