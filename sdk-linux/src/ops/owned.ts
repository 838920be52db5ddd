/**
 * The links nsm-ts left in a namespace, found by the ownership mark in their alias (`ownerAlias`), and their
 * removal.
 */
import { Code, StatusError } from "@nsm-ts/base/status";
import type { IpExecutor } from "../executor.js";
import type { Netns } from "../netns.js";
import { Batch } from "./batch.js";
import { type LinkInfo, listLinks } from "./read.js";

/** Links whose alias starts with `prefix` (e.g. `ownerPrefix("forwarder-1")`): what nsm-ts left behind. */
export async function listOwned(exec: IpExecutor, netns: Netns, prefix: string): Promise<LinkInfo[]> {
  return (await listLinks(exec, netns)).filter((l) => l.alias?.startsWith(prefix) ?? false);
}

/**
 * Deletes the links `listOwned` finds, except those `keep` accepts (adopted ones). Links already gone
 * (a veth end whose peer was deleted first) are skipped. Returns the names deleted.
 */
export async function removeOwned(
  exec: IpExecutor,
  netns: Netns,
  prefix: string,
  keep: (l: LinkInfo) => boolean = () => false,
): Promise<string[]> {
  const removed: string[] = [];
  for (const l of await listOwned(exec, netns, prefix)) {
    if (keep(l)) continue;
    try {
      // One process per link: a peer deleted with its other end must not fail the rest.
      await new Batch(exec, netns).deleteLink(l.name).commit();
      removed.push(l.name);
    } catch (err) {
      if (!(err instanceof StatusError && err.code === Code.NotFound)) throw err;
    }
  }
  return removed;
}
