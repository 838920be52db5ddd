/**
 * Network addresses: IPv4/IPv6 addresses and CIDRs (parse, format, contain, cover, overlap, offset) as
 * bigints, the same as 16-bit words for bit-keyed structures, and MAC addresses. The parsers accept
 * exactly what Node's `net.isIP` accepts (an IPv6 zone only when asked).
 */
export {
  type Cidr,
  type CidrFault,
  type CidrOptions,
  cidrContains,
  cidrCovers,
  cidrLast,
  cidrOf,
  cidrOverlaps,
  formatCidr,
  formatIp,
  type Ip,
  ipBits,
  nextIp,
  offsetIp,
  parseCidr,
  parseIp,
  readCidr,
  requireCidr,
  requireIp,
} from "./ip.js";
export { formatMac, type MacOptions, parseMac, parseOui, requireMac } from "./mac.js";
export {
  familyOf,
  type IpFamily,
  type IpOptions,
  ipWords,
  isPrefixLength,
  type PrefixFault,
  type PrefixOptions,
  type PrefixWords,
  readPrefix,
} from "./words.js";
