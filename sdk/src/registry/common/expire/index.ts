/** expire (registry): registrations end at min(requested, token expiry, now + expire period). */
export { DEFAULT_EXPIRE_PERIOD_MS, type ExpireOptions, newServer } from "./expire.js";
