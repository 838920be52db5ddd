/** setpayload (registry): empty network service payload → `IP`. */
export { newServer } from "./setpayload.js";
