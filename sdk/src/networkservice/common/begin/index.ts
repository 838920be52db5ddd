/** begin element: per-connection serialisation and event factory. See README.md. */
export { newServer, newClient, eventFactoryKey, eventFactoryOf, type EventFactory, type EventOptions, type BeginOptions } from "./begin.js";
