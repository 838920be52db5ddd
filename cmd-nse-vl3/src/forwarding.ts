/**
 * IP forwarding in the endpoint's own network namespace: a vL3 endpoint routes between its clients and to its
 * peers, which the kernel only does with forwarding on. The previous values are put back at shutdown.
 */
import { readFileSync, writeFileSync } from "node:fs";
import type { Logger } from "@nsm-ts/base/log";

const KNOBS = ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"] as const;

/** Turns forwarding on where it is off; returns the function restoring what it changed. */
export function enableForwarding(log: Logger): () => void {
  const changed: Array<{ path: string; was: string }> = [];
  for (const path of KNOBS) {
    try {
      const was = readFileSync(path, "utf8").trim();
      if (was === "1") continue;
      writeFileSync(path, "1");
      changed.push({ path, was });
    } catch (err) {
      // NOOP data plane, no privileges, or a read-only /proc/sys: the endpoint serves, members just cannot talk.
      log.warn({ err, path }, "cannot turn IP forwarding on; members will not reach each other through this endpoint");
    }
  }
  if (changed.length > 0) log.info({ knobs: changed.map((c) => c.path) }, "IP forwarding on");
  return () => {
    for (const c of changed) {
      try {
        writeFileSync(c.path, c.was);
      } catch (err) {
        log.warn({ err, path: c.path }, "cannot restore the IP forwarding setting");
      }
    }
  };
}
