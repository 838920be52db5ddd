/**
 * Variables every nsm-ts program reads, with upstream's names and defaults where upstream has them, so the
 * five programs' tables agree and a manifest can set them the same way everywhere.
 */

import {
  DEFAULT_CALL_DEADLINE_MS,
  DEFAULT_DEADLINE_MARGIN_MS,
  DEFAULT_MAX_RECV_MESSAGE_BYTES,
  DEFAULT_RECEIVE_TIMEOUT_MS,
} from "../limits/index.js";
import { bool, duration, hostPort, int, logLevel, nonEmpty, spiffePatterns, str, url, workloadApiAddress } from "./parsers.js";
import { allOrNone, ConfigError } from "./schema.js";

/** Options of `commonVars`. */
export interface CommonVarsOptions {
  /** Default `NSM_NAME`, computed by the program (e.g. `nsmgr-<hostname>`). */
  name: string;
  /** How `--help` shows that default (e.g. `nsmgr-<hostname>`), so the table does not depend on the machine. */
  nameLabel?: string;
}

/** Upstream's default OpenTelemetry collector address. */
export const DEFAULT_OPEN_TELEMETRY_ENDPOINT = "otel-collector.observability.svc.cluster.local:4318";

/**
 * The common table entries: name, log level, token lifetime, certificate files, metrics and tracing. Spread
 * them into `defineConfig({...commonVars(o), ...})` and pass `validateCommon` as its `validate`.
 */
export function commonVars(opts: CommonVarsOptions) {
  return {
    name: {
      name: "NSM_NAME",
      description: "Name of this instance: its path segment name and registration name; unique in the mesh",
      default: opts.name,
      defaultLabel: opts.nameLabel,
      parse: nonEmpty,
    },
    logLevel: {
      name: "NSM_LOG_LEVEL",
      description: "Log level: TRACE, DEBUG, INFO, WARN, ERROR, FATAL or PANIC",
      default: "INFO",
      parse: logLevel,
    },
    maxTokenLifetime: {
      name: "NSM_MAX_TOKEN_LIFETIME",
      description: "Longest lifetime of the tokens this instance signs (Go duration, e.g. 10m)",
      default: "10m",
      parse: duration,
    },
    tlsCertFile: {
      name: "NSM_TLS_CERT_FILE",
      description:
        "PEM certificate (X.509-SVID) for mTLS and token signing; unset with the key and CA (and no SPIFFE_ENDPOINT_SOCKET) = insecure dev mode",
      parse: str,
    },
    tlsKeyFile: {
      name: "NSM_TLS_KEY_FILE",
      description: "PEM private key of NSM_TLS_CERT_FILE",
      parse: str,
    },
    tlsCaFile: {
      name: "NSM_TLS_CA_FILE",
      description: "PEM bundle of CAs trusted for peers (the trust domain's bundle)",
      parse: str,
    },
    spiffeEndpointSocket: {
      name: "SPIFFE_ENDPOINT_SOCKET",
      description:
        "SPIFFE Workload API socket (unix:///path, e.g. the SPIRE agent's): identity and mTLS from its X.509-SVID, rotated while running; wins over NSM_TLS_*",
      parse: workloadApiAddress,
    },
    spiffeStartTimeout: {
      name: "NSM_SPIFFE_START_TIMEOUT",
      description: "How long to wait at start for the first X.509-SVID from SPIFFE_ENDPOINT_SOCKET before exiting with an error",
      default: "30s",
      parse: duration,
    },
    metricsListenOn: {
      name: "NSM_METRICS_LISTEN_ON",
      description: "Serve Prometheus metrics at /metrics on this URL (tcp://host:port); unset = no metrics server",
      parse: url,
    },
    telemetry: {
      name: "TELEMETRY",
      description: "Enable OpenTelemetry tracing (true/false)",
      default: "false",
      parse: bool,
    },
    openTelemetryEndpoint: {
      name: "NSM_OPEN_TELEMETRY_ENDPOINT",
      description: "OTLP/HTTP collector host:port for traces when TELEMETRY=true (sent to http://host:port/v1/traces)",
      default: DEFAULT_OPEN_TELEMETRY_ENDPOINT,
      parse: hostPort,
    },
  } as const;
}

/**
 * The table entries of a program that serves gRPC: `NSM_MAX_RECV_MESSAGE_BYTES`, the largest message its server
 * accepts, `NSM_RECEIVE_TIMEOUT` and `NSM_DEFAULT_CALL_DEADLINE`, the limits on stalled calls, and
 * `NSM_DEADLINE_MARGIN`, how early a call is answered before its deadline (pass them to `createServer` as
 * `maxRecvMessageBytes`, `receiveTimeoutMs`, `defaultDeadlineMs` and `deadlineMarginMs`; `serverLimits` does).
 */
export function serverVars() {
  return {
    maxRecvMessageBytes: {
      name: "NSM_MAX_RECV_MESSAGE_BYTES",
      description: "Largest gRPC message this server accepts, in bytes; larger ones get RESOURCE_EXHAUSTED",
      default: String(DEFAULT_MAX_RECV_MESSAGE_BYTES),
      parse: int({ min: 64 * 1024, max: 1024 * 1024 * 1024 }),
    },
    receiveTimeoutMs: {
      name: "NSM_RECEIVE_TIMEOUT",
      description: "Longest a call may take to send its request message; a stalled one gets DEADLINE_EXCEEDED (0 = no limit)",
      default: `${DEFAULT_RECEIVE_TIMEOUT_MS / 1000}s`,
      parse: duration,
    },
    defaultDeadlineMs: {
      name: "NSM_DEFAULT_CALL_DEADLINE",
      description: "Deadline of a unary call that carries none (streams are exempt): then DEADLINE_EXCEEDED (0 = none)",
      default: `${DEFAULT_CALL_DEADLINE_MS / 60_000}m`,
      parse: duration,
    },
    deadlineMarginMs: {
      name: "NSM_DEADLINE_MARGIN",
      description:
        "How long before its deadline a unary call is answered DEADLINE_EXCEEDED (at most a tenth of its time), so callers need not reset streams (0 = at the deadline)",
      default: `${DEFAULT_DEADLINE_MARGIN_MS}ms`,
      parse: duration,
    },
  } as const;
}

/** The `createServer` options of `serverVars`' settings. */
export function serverLimits(cfg: ServerLimits): ServerLimits {
  return {
    maxRecvMessageBytes: cfg.maxRecvMessageBytes,
    receiveTimeoutMs: cfg.receiveTimeoutMs,
    defaultDeadlineMs: cfg.defaultDeadlineMs,
    deadlineMarginMs: cfg.deadlineMarginMs,
  };
}

/** The `createServer` limits a program reads from `serverVars`. */
export interface ServerLimits {
  maxRecvMessageBytes: number;
  receiveTimeoutMs: number;
  defaultDeadlineMs: number;
  deadlineMarginMs: number;
}

/**
 * The table entry of a program that serves NetworkService behind authorize: `NSM_TRUSTED_HOPS`, the peers that may
 * send a path that began with another workload (compile it with `spiffeIdMatcher` from `@nsm-ts/base/policy`).
 */
export function trustedHopsVars() {
  return {
    trustedHops: {
      name: "NSM_TRUSTED_HOPS",
      description:
        "SPIFFE ID patterns (comma separated, * = any characters) of the peers that may forward a connection path that began with another workload (with TLS); unset: IDs whose last path segment starts with nsmgr or forwarder",
      defaultLabel: "nsmgr/forwarder rule",
      parse: spiffePatterns,
    },
  } as const;
}

/** The certificate settings as parsed by `commonVars`. */
export interface TlsFiles {
  tlsCertFile?: string | undefined;
  tlsKeyFile?: string | undefined;
  tlsCaFile?: string | undefined;
}

/** Cross-variable checks of the common entries: the three certificate files are set together or not at all. */
export function validateCommon(cfg: TlsFiles & { metricsListenOn?: string | undefined }): void {
  allOrNone({ NSM_TLS_CERT_FILE: cfg.tlsCertFile, NSM_TLS_KEY_FILE: cfg.tlsKeyFile, NSM_TLS_CA_FILE: cfg.tlsCaFile });
  if (cfg.metricsListenOn?.startsWith("unix://")) {
    throw new ConfigError("NSM_METRICS_LISTEN_ON", `invalid URL ${JSON.stringify(cfg.metricsListenOn)}: expected tcp://host:port`);
  }
}
