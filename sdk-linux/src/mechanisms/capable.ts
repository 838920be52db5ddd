/**
 * The one privilege check a kernel forwarder makes at start, so a missing capability is reported once and
 * clearly instead of as the first failed connection.
 */
import { readFile } from "node:fs/promises";
import { Code, fail } from "@nsm-ts/base/status";
import { runCommand } from "../exec.js";

/** Linux capability numbers the kernel data plane needs. */
export const Capability = { NET_ADMIN: 12, SYS_ADMIN: 21 } as const;

/** The effective capability set from the text of /proc/<pid>/status (0n when absent). */
export function effectiveCapabilities(statusText: string): bigint {
  const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(statusText);
  return m?.[1] ? BigInt(`0x${m[1]}`) : 0n;
}

/** Options of `checkKernelCapable`; tests override where the status comes from. */
export interface CapableOptions {
  /** Default `/proc/self/status`. */
  statusPath?: string;
  /** Default `ip`. */
  ip?: string;
}

/**
 * Throws PermissionDenied ("needs root or CAP_NET_ADMIN") unless the process may change links (CAP_NET_ADMIN)
 * and enter other namespaces (CAP_SYS_ADMIN), and FailedPrecondition when iproute2 is missing.
 */
export async function checkKernelCapable(opts: CapableOptions = {}): Promise<void> {
  if (process.platform !== "linux") fail(Code.FailedPrecondition, `kernel data plane: needs Linux (this is ${process.platform})`);
  const caps = effectiveCapabilities(await readFile(opts.statusPath ?? "/proc/self/status", "utf8"));
  const missing = Object.entries(Capability)
    .filter(([, bit]) => (caps & (1n << BigInt(bit))) === 0n)
    .map(([name]) => `CAP_${name}`);
  if (missing.length > 0) {
    fail(
      Code.PermissionDenied,
      `kernel data plane: needs root or CAP_NET_ADMIN (and CAP_SYS_ADMIN to enter pod namespaces); missing ${missing.join(", ")}`,
    );
  }
  const r = await runCommand([opts.ip ?? "ip", "-V"]).catch((err: unknown) => ({ code: -1, stdout: "", stderr: String(err) }));
  if (r.code !== 0) fail(Code.FailedPrecondition, `kernel data plane: iproute2 (${opts.ip ?? "ip"}) is not usable: ${r.stderr.trim()}`);
}
