/**
 * The SPIFFE Workload API as an identity source: `parseWorkloadApiAddress` reads `SPIFFE_ENDPOINT_SOCKET`,
 * `createX509Source` fetches the X.509-SVID (an `Identity` rotated in place, a `TlsSource` for mTLS), and the
 * conversion of one `X509SVID` message is exported for servers and tests that produce them.
 */
export { parseWorkloadApiAddress, SPIFFE_ENDPOINT_SOCKET } from "./address.js";
export {
  createX509Source,
  DEFAULT_SPIFFE_START_TIMEOUT_MS,
  WORKLOAD_API_HEADER,
  type X509Source,
  type X509SourceOptions,
} from "./source.js";
export { certificates, type ParsedSvid, parseX509Svid, pemOf, splitDer } from "./svid.js";
