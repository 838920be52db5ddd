/** validate (server): InvalidArgument naming the field for a Request or Close beyond the limits (docs/wire-compatibility.md#limits). */
export { newServer, validateConnection, validateRequest } from "./server.js";
