// What `npm start` prints: its own lines, the programs' log records one line each, and the connection the client got.

/** Writes one line to stdout. */
export const out = (s = "") => process.stdout.write(`${s}\n`);
/** The time of day of `d` as HH:MM:SS. */
export const clock = (d = new Date()) => d.toTimeString().slice(0, 8);

/** One program log record (pino JSON) as a line of the script's output. */
export function describeLine(name, rec) {
  const extra = rec.err?.message ? `: ${rec.err.message}` : "";
  return `  [${name}] ${String(rec.levelName ?? levelName(rec.level)).toUpperCase()} ${rec.msg}${extra}`;
}

function levelName(level) {
  return { 10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal" }[level] ?? String(level);
}

/** The connection the client got, `tookMs` after the script started. */
export function printConnection(c, tookMs) {
  out(`connected in ${(tookMs / 1000).toFixed(1)} s: connection ${c.id}`);
  out(`  network service   ${c.networkService} (endpoint ${c.networkServiceEndpointName || "?"})`);
  out(`  state             ${c.state}`);
  const params = Object.entries(c.mechanismParameters ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  out(`  mechanism         ${c.mechanism}${params ? ` (${params})` : ""}`);
  out(`  client addresses  ${c.srcIpAddrs.join(", ") || "none"}`);
  out(`  endpoint addresses ${c.dstIpAddrs.join(", ") || "none"}`);
  out(`  path (${c.path.length} segments):`);
  for (const [i, s] of c.path.entries()) {
    out(`    ${i}  ${s.name.padEnd(28)} ${s.id}${s.expires ? `  token expires ${clock(new Date(s.expires))}` : ""}`);
  }
}
