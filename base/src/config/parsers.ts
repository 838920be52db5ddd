/**
 * Parsers for environment values. Each takes the raw string and returns the typed value or throws an
 * `Error` whose message says what was wrong and what is expected; the schema prefixes the variable name.
 */
import { LINUX_IF_MAX_LENGTH, MechanismType } from "@nsm-ts/api/constants";
import { isSpiffeId } from "../identity/index.js";
import { parseLogLevel } from "../log/index.js";
import { familyOf, readPrefix } from "../netaddr/index.js";
import { parseWorkloadApiAddress } from "../spiffe/address.js";

/** A parser: raw environment text in, typed value out; throws an `Error` with the reason. */
export type Parser<T> = (raw: string) => T;

/** Any string, trimmed. */
export const str: Parser<string> = (raw) => raw.trim();

/** A string that is not empty after trimming. */
export const nonEmpty: Parser<string> = (raw) => {
  const v = raw.trim();
  if (v === "") throw new Error("must not be empty");
  return v;
};

/** Options of `int`: inclusive bounds. */
export interface IntOptions {
  /** Smallest accepted value (inclusive). */
  min?: number;
  /** Largest accepted value (inclusive). */
  max?: number;
}

/** Parser for a decimal integer, optionally bounded. */
export function int(opts: IntOptions = {}): Parser<number> {
  return (raw) => {
    const v = raw.trim();
    if (!/^[+-]?\d+$/.test(v)) throw new Error(`invalid integer ${JSON.stringify(raw)}`);
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw new Error(`integer ${JSON.stringify(raw)} is out of range`);
    if (opts.min !== undefined && n < opts.min) throw new Error(`${n} is less than the minimum ${opts.min}`);
    if (opts.max !== undefined && n > opts.max) throw new Error(`${n} is greater than the maximum ${opts.max}`);
    return n;
  };
}

/** `true`/`false`/`1`/`0`, case-insensitive. */
export const bool: Parser<boolean> = (raw) => {
  const v = raw.trim().toLowerCase();
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new Error(`invalid boolean ${JSON.stringify(raw)}: expected true, false, 1 or 0`);
};

const durationUnitsMs: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * A Go-style duration (`10m`, `1m30s`, `500ms`, `1.5h`, `0`) in milliseconds, as upstream's envconfig reads
 * `time.Duration`; negative durations make no sense for any setting and are rejected.
 */
export const duration: Parser<number> = (raw) => {
  const v = raw.trim();
  const bad = (): Error => new Error(`invalid duration ${JSON.stringify(raw)}: expected e.g. 500ms, 15s, 1m30s, 10m or 1h`);
  if (v === "0") return 0;
  if (v === "") throw bad();
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let ms = 0;
  let pos = 0;
  while (pos < v.length) {
    re.lastIndex = pos;
    const m = re.exec(v);
    if (!m) throw bad();
    const unit = durationUnitsMs[m[2] ?? ""];
    if (unit === undefined) throw bad();
    ms += Number(m[1]) * unit;
    pos = re.lastIndex;
  }
  if (!Number.isFinite(ms)) throw bad();
  return ms;
};

const hostRe = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Checks `host:port` where host may be empty (all interfaces / local), a DNS name, IPv4 or `[IPv6]`. */
function checkHostPort(hostPort: string): boolean {
  const m = /^(\[[^\]]*\]|[^:[\]]*):(\d{1,5})$/.exec(hostPort);
  if (!m) return false;
  const host = m[1] ?? "";
  if (Number(m[2]) > 65535) return false;
  if (host.startsWith("[")) return familyOf(host.slice(1, -1), { zone: true }) === 6;
  return host === "" || familyOf(host) === 4 || hostRe.test(host);
}

/** `host:port` with a non-empty host (DNS name, IPv4 or `[IPv6]`), e.g. a collector address. */
export const hostPort: Parser<string> = (raw) => {
  const v = raw.trim();
  if (v.startsWith(":") || !checkHostPort(v)) {
    throw new Error(`invalid address ${JSON.stringify(raw)}: expected host:port`);
  }
  return v;
};

/**
 * An NSM endpoint URL, `tcp://host:port` (host may be empty: all interfaces when listening) or
 * `unix:///absolute/path`; returned as the trimmed string so any transport can take it as is.
 */
export const url: Parser<string> = (raw) => {
  const v = raw.trim();
  const ok = v.startsWith("tcp://")
    ? checkHostPort(v.slice("tcp://".length))
    : v.startsWith("unix://")
      ? /^\/[^\0]*[^/\0]$/.test(v.slice("unix://".length))
      : false;
  if (!ok) throw new Error(`invalid URL ${JSON.stringify(raw)}: expected tcp://host:port or unix:///path`);
  return v;
};

/** Comma-separated values, trimmed, empty entries dropped. */
export const list: Parser<string[]> = (raw) =>
  raw
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");

/** Comma-separated SPIFFE ID patterns, at least one, where `*` matches any run of characters (`spiffe://td/nsmgr-*`). */
export const spiffePatterns: Parser<string[]> = (raw) => {
  const patterns = list(raw);
  if (patterns.length === 0) throw new Error("expected at least one SPIFFE ID pattern");
  for (const p of patterns) {
    // A `*` stands for characters a SPIFFE ID may hold, so the pattern with `x` in its place must be one.
    if (!p.startsWith("spiffe://") || !isSpiffeId(p.replaceAll("*", "x"))) {
      throw new Error(`invalid SPIFFE ID pattern ${JSON.stringify(p)}: expected spiffe://trust-domain/path, * matching any characters`);
    }
  }
  return patterns;
};

/** Comma-separated NSM URLs (see `url`). */
export const urlList: Parser<string[]> = (raw) => list(raw).map((s) => url(s));

/**
 * Labels as upstream's `NSM_LABELS`: `key1:value1,key2:value2`. Upstream's cmd-nsc writes `key1=value1`, so `=`
 * is accepted too; each entry splits at the first `:` or `=`, so values may contain either. Keys must be
 * non-empty and unique.
 */
export const labels: Parser<Record<string, string>> = (raw) => {
  const out: Record<string, string> = {};
  for (const entry of list(raw)) {
    const i = entry.search(/[:=]/);
    if (i < 0) throw new Error(`invalid label ${JSON.stringify(entry)}: expected key:value`);
    const key = entry.slice(0, i).trim();
    if (key === "") throw new Error(`invalid label ${JSON.stringify(entry)}: empty key`);
    if (Object.hasOwn(out, key)) throw new Error(`duplicate label key ${JSON.stringify(key)}`);
    out[key] = entry.slice(i + 1).trim();
  }
  return out;
};

/** An IPv4 or IPv6 prefix `address/length` (host bits allowed, an IPv6 zone too), validated; returned trimmed. */
export const cidr: Parser<string> = (raw) => {
  const v = raw.trim();
  if (typeof readPrefix(v, { zone: true }) === "string") {
    throw new Error(`invalid CIDR ${JSON.stringify(raw)}: expected address/length, e.g. 169.254.0.0/16 or fd00::/64`);
  }
  return v;
};

/** A single IPv4 or IPv6 address (an IPv6 zone allowed), e.g. the local end of tunnels. */
export const ip: Parser<string> = (raw) => {
  const v = raw.trim();
  if (familyOf(v, { zone: true }) === undefined) throw new Error(`invalid IP address ${JSON.stringify(raw)}`);
  return v;
};

/** Comma-separated CIDRs (see `cidr`). */
export const cidrList: Parser<string[]> = (raw) => list(raw).map((s) => cidr(s));

/** A pino level name, as `logLevel` returns it (upstream's PANIC maps to fatal). */
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

/** `trace|debug|info|warn|error|fatal|panic` (case-insensitive, upstream's names) as a pino level. */
export const logLevel: Parser<LogLevel> = (raw) => {
  const level = parseLogLevel(raw);
  if (level === undefined) {
    throw new Error(`invalid log level ${JSON.stringify(raw)}: expected trace, debug, info, warn, error, fatal or panic`);
  }
  return level;
};

/** Parser for one of a fixed set of values, matched case-insensitively and returned as listed. */
export function oneOf<const V extends string>(values: readonly V[]): Parser<V> {
  return (raw) => {
    const v = raw.trim().toLowerCase();
    const hit = values.find((x) => x.toLowerCase() === v);
    if (hit === undefined) throw new Error(`invalid value ${JSON.stringify(raw)}: expected one of ${values.join(", ")}`);
    return hit;
  };
}

/** One entry of `NSM_NETWORK_SERVICES`: what a client asks for. */
export interface NetworkServiceRequestUrl {
  /** Mechanism type: the URL scheme upper-cased (`kernel://` → `KERNEL`), `KERNEL` when no scheme is given. */
  mechanism: MechanismType;
  /** Network service name, including `@domain` for interdomain requests. */
  networkService: string;
  /**
   * Requested interface name (≤ 15 chars); unset means "generate one" (docs/wire-compatibility.md#interface-names).
   */
  ifName?: string;
  /** Connection labels from the query string (`?app=web&color=red`). */
  labels: Record<string, string>;
}

const mechanismTypes = new Set<string>(Object.values(MechanismType));
const nameRe = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;

function decode(s: string, entry: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new Error(`invalid network service URL ${JSON.stringify(entry)}: bad %-escape`);
  }
}

/**
 * Parses one `[mechanism://]service[@domain][/ifname][?label=value&…]`, upstream cmd-nsc's format
 * (docs/wire-compatibility.md#interdomain-names).
 */
export function parseNetworkServiceUrl(raw: string): NetworkServiceRequestUrl {
  const entry = raw.trim();
  const bad = (why: string): Error =>
    new Error(
      `invalid network service URL ${JSON.stringify(entry)}: ${why}; expected [mechanism://]service[@domain][/ifname][?label=value&...]`,
    );
  let rest = entry;
  let mechanism: MechanismType = MechanismType.KERNEL;
  const schemeEnd = rest.indexOf("://");
  if (schemeEnd >= 0) {
    const scheme = rest.slice(0, schemeEnd).toUpperCase();
    if (!mechanismTypes.has(scheme)) throw bad(`unknown mechanism ${JSON.stringify(rest.slice(0, schemeEnd))}`);
    mechanism = scheme as MechanismType;
    rest = rest.slice(schemeEnd + 3);
  }
  let query = "";
  const q = rest.indexOf("?");
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  const slash = rest.indexOf("/");
  const service = slash >= 0 ? rest.slice(0, slash) : rest;
  const ifName = slash >= 0 ? decode(rest.slice(slash + 1), entry) : undefined;
  const [name = "", domain, ...more] = service.split("@");
  if (!nameRe.test(name)) throw bad("missing or invalid service name");
  if (more.length > 0 || (domain !== undefined && !nameRe.test(domain))) throw bad("invalid domain");
  if (ifName !== undefined) {
    if (ifName === "" || /[/\s:%]/.test(ifName)) throw bad(`invalid interface name ${JSON.stringify(ifName)}`);
    if (ifName.length > LINUX_IF_MAX_LENGTH) {
      throw bad(`interface name ${JSON.stringify(ifName)} is longer than ${LINUX_IF_MAX_LENGTH} characters`);
    }
  }
  const out: Record<string, string> = {};
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const key = decode(eq >= 0 ? pair.slice(0, eq) : pair, entry);
    if (key === "") throw bad("empty label key");
    out[key] = eq >= 0 ? decode(pair.slice(eq + 1).replace(/\+/g, " "), entry) : "";
  }
  return { mechanism, networkService: service, ...(ifName === undefined ? {} : { ifName }), labels: out };
}

/** Comma-separated network service request URLs, as `NSM_NETWORK_SERVICES`. */
export const networkServiceUrls: Parser<NetworkServiceRequestUrl[]> = (raw) => list(raw).map((s) => parseNetworkServiceUrl(s));

/** Wraps a list parser so an empty list is an error, for settings that need at least one entry. */
export function atLeastOne<T>(parse: Parser<T[]>): Parser<T[]> {
  return (raw) => {
    const items = parse(raw);
    if (items.length === 0) throw new Error(`must list at least one value, got ${JSON.stringify(raw)}`);
    return items;
  };
}

/** A SPIFFE Workload API address (`unix:///path` or `unix:/path`), returned as the `unix:///path` URL to dial. */
export const workloadApiAddress: Parser<string> = (raw) => parseWorkloadApiAddress(raw);

/** Where a program keeps its records: this process's memory, or an etcd cluster shared by every replica. */
export type StoreConfig = { kind: "memory" } | { kind: "etcd"; endpoints: string[] };

/** Parses `memory` or `etcd://host:port[,host:port…]` (the registry's and the traffic controller's store). */
export const storeUrl: Parser<StoreConfig> = (raw) => {
  const v = raw.trim();
  if (v.toLowerCase() === "memory") return { kind: "memory" };
  const expected = "expected memory or etcd://host:port[,host:port]";
  if (!v.startsWith("etcd://")) throw new Error(`invalid store ${JSON.stringify(raw)}: ${expected}`);
  const endpoints = v
    .slice("etcd://".length)
    .split(",")
    .map((s) => s.trim());
  for (const e of endpoints) {
    try {
      hostPort(e);
    } catch {
      throw new Error(`invalid etcd endpoint ${JSON.stringify(e)} in ${JSON.stringify(raw)}: ${expected}`);
    }
  }
  return { kind: "etcd", endpoints };
};
