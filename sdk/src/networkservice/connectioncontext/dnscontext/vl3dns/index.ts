/** vl3dns: member names of a vL3 network (server side) and the peers' name servers (client side). */

export { newClient } from "./client.js";
export { type MemberNames, newMemberNames } from "./members.js";
export { compileNameTemplate, DEFAULT_NAME_TEMPLATE, type NameTemplate, parentDomains } from "./names.js";
export { newServer, type Vl3DnsServerOptions } from "./server.js";
