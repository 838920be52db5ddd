/** discoverforwarder element (server, nsmgr): sticky forwarder choice by labels, dropped on reselect. */
export { type DiscoverForwarderOptions, forwarderLabels, newServer } from "./server.js";
