/** localbypass (registry): publish the nsmgr URL upstream, keep the real one locally. */
export { newServer } from "./localbypass.js";
