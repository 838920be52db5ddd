/** The forwarder chain: NSE selection, the data plane by mechanism type, and its own registration. */
export { createForwarder, type Forwarder, type ForwarderOptions } from "./forwarder.js";
