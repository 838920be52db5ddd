/** vl3mtu elements (server and client): the smallest MTU in a vL3 network wins. */
export { createVl3MtuState, JUMBO_FRAME_SIZE, newClient, newServer, Vl3MtuState } from "./mtu.js";
