/**
 * Network namespaces for the root benches: `nsmts-b-<tag>-<suffix>` with loopback up, all removed by `removeAll`;
 * plus a counter element for the client chain (how many Requests, refreshes included, left the client).
 */
import { randomBytes } from "node:crypto";
import type { NetworkServiceElement } from "@nsm-ts/sdk/networkservice";
import { runCommand } from "@nsm-ts/sdk-linux";

/** Runs `ip` with `args`; throws with its stderr when it fails. */
export async function ip(...args: string[]): Promise<void> {
  const r = await runCommand(["ip", ...args]);
  if (r.code !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
}

/** The namespaces one bench run creates. */
export class BenchNamespaces {
  private readonly tag = randomBytes(3).toString("hex");
  private readonly created: string[] = [];

  /** Creates `nsmts-b-<tag>-<suffix>` with loopback up; returns its name. */
  async add(suffix: string): Promise<string> {
    const name = `nsmts-b-${this.tag}-${suffix}`;
    await ip("netns", "add", name);
    this.created.push(name);
    await ip("-n", name, "link", "set", "lo", "up");
    return name;
  }

  /** Deletes every namespace `add` created (errors ignored: cleanup goes on). */
  async removeAll(): Promise<void> {
    for (const n of this.created.splice(0)) await runCommand(["ip", "netns", "del", n]).catch(() => undefined);
  }
}

/** A client chain element counting the Requests that pass (first Requests, refreshes and heals alike). */
export function requestCounter(): { readonly element: NetworkServiceElement; readonly count: () => number } {
  let n = 0;
  return {
    element: {
      name: "bench-count",
      request: (ctx, req, next) => {
        n++;
        return next.request(ctx, req);
      },
      close: (ctx, conn, next) => next.close(ctx, conn),
    },
    count: () => n,
  };
}
