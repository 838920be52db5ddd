/** vL3 IPAM: the endpoint's prefix and addresses, the server and client elements, the prefix client and the peer mesh. */
export { newClient } from "./client.js";
export { createVl3Ipam, Vl3Ipam } from "./ipam.js";
export { newMemberServer, type Vl3Member, type Vl3MemberListener } from "./members.js";
export { createVl3Peers, type Vl3Peers, type Vl3PeersOptions } from "./peers.js";
export { type PrefixClient, type PrefixClientOptions, startPrefixClient } from "./prefix-client.js";
export { leaseKey, newServer, type Vl3ServerOptions } from "./server.js";
