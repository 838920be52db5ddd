/** roundrobin element (server): rotating endpoint choice among discover's candidates, skipping failing ones. */
export { newServer } from "./server.js";
