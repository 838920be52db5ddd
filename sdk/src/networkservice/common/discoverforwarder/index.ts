/** discoverforwarder element (server, nsmgr): sticky forwarder choice by labels, dropped on reselect. */
export { newServer, forwarderLabels, type DiscoverForwarderOptions } from "./server.js";
