/**
 * The Workload API address from `SPIFFE_ENDPOINT_SOCKET`, accepted in the forms the SPIFFE libraries accept for a
 * unix socket (`unix:///path` and `unix:/path`) and turned into the `unix:///path` URL our gRPC layer dials.
 */

/** The environment variable that names the Workload API socket (the SPIFFE standard's name). */
export const SPIFFE_ENDPOINT_SOCKET = "SPIFFE_ENDPOINT_SOCKET";

/**
 * Parses a Workload API address (`unix:///run/spire/sockets/agent.sock` or `unix:/run/…`) into a `unix:///…` URL;
 * throws an Error saying what is wrong (config parsers prefix the variable name).
 */
export function parseWorkloadApiAddress(raw: string): string {
  const addr = raw.trim();
  const bad = (why: string): never => {
    throw new Error(`invalid Workload API address ${JSON.stringify(raw)}: ${why}; expected unix:///path/to/agent.sock`);
  };
  let u: URL;
  try {
    u = new URL(addr);
  } catch {
    return bad("not a URI");
  }
  if (u.protocol !== "unix:") return bad("the scheme must be unix");
  if (u.username !== "" || u.password !== "") bad("user info is not allowed");
  if (u.host !== "") bad("a host is not allowed (three slashes: unix:///path)");
  if (u.search !== "" || addr.includes("?")) bad("query values are not allowed");
  if (u.hash !== "" || addr.includes("#")) bad("a fragment is not allowed");
  if (!u.pathname.startsWith("/") || u.pathname === "/") bad("the socket path must be absolute");
  return `unix://${decodeURIComponent(u.pathname)}`;
}
