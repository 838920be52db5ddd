/** begin element: per-connection serialisation and event factory. See README.md. */
export {
  type BeginOptions,
  CLOSE_RETRY_MS,
  type EventFactory,
  type EventOptions,
  eventFactoryKey,
  eventFactoryOf,
  isReselectClose,
  newClient,
  newServer,
  reselectCloseKey,
} from "./begin.js";
