/**
 * NSM addresses are URLs (`tcp://host:port`, `unix:///path`); grpc-js wants its own target syntax. This file is
 * the one place that translates between them, so every listener and dialer accepts exactly the same inputs.
 */
import { Code, StatusError } from "../status/index.js";

/** A parsed NSM transport URL and the grpc-js target it maps to. */
export interface ParsedUrl {
  scheme: "tcp" | "unix";
  /** TCP host without brackets ("" when the URL had none, meaning all interfaces). */
  host?: string;
  /** TCP port (0 = let the kernel pick, only meaningful for listening). */
  port?: number;
  /** Absolute socket path for unix URLs. */
  path?: string;
  /** The target string grpc-js binds or dials. */
  grpcTarget: string;
}

/** Parses `tcp://host:port`, `tcp://:port`, `tcp://[::1]:port` or `unix:///abs/path`; InvalidArgument otherwise. */
export function parseUrl(url: string): ParsedUrl {
  const bad = (why: string): never => {
    throw new StatusError(Code.InvalidArgument, `grpc: bad url ${JSON.stringify(url)}: ${why}`);
  };
  if (url.startsWith("unix://")) {
    const path = decodeURIComponent(url.slice("unix://".length));
    if (!path.startsWith("/")) bad("unix socket path must be absolute (unix:///path)");
    return { scheme: "unix", path, grpcTarget: `unix://${path}` };
  }
  if (url.startsWith("tcp://")) {
    const rest = url.slice("tcp://".length).replace(/\/$/, "");
    const m = /^(\[[^\]]*\]|[^:/[\]]*):(\d{1,5})$/.exec(rest);
    if (!m) return bad("expected tcp://host:port");
    const rawHost = m[1] ?? "";
    const port = Number(m[2]);
    if (port > 65535) bad("port out of range");
    const host = rawHost.startsWith("[") ? rawHost.slice(1, -1) : rawHost;
    const targetHost = host === "" ? "0.0.0.0" : host.includes(":") ? `[${host}]` : host;
    return { scheme: "tcp", host, port, grpcTarget: `${targetHost}:${port}` };
  }
  return bad("scheme must be tcp:// or unix://");
}

/** Builds the URL a listener reports back once it knows its real port. */
export function formatUrl(parsed: ParsedUrl, port?: number): string {
  if (parsed.scheme === "unix") return `unix://${parsed.path ?? ""}`;
  const host = parsed.host ?? "";
  return `tcp://${host.includes(":") ? `[${host}]` : host}:${port ?? parsed.port ?? 0}`;
}
