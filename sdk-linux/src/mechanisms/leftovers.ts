/**
 * Cleanup for a restarted forwarder: links that carry its ownership mark are kept when their connection is
 * still active (a refresh will adopt them) and removed otherwise. Without an explicit list it looks in every
 * namespace it can see: its own, the named ones, and those of all processes.
 */
import { stat } from "node:fs/promises";
import { Code, StatusError } from "@nsm-ts/base/status";
import { createIpExecutor, type IpExecutor } from "../executor.js";
import { ownerPrefix } from "../names.js";
import { currentNetns, type Netns, netnsCandidatePaths, openNetns } from "../netns.js";
import { listOwned, removeOwned } from "../ops/owned.js";
import type { LinkInfo } from "../ops/read.js";

/** Options of `adoptOrRemoveLeftovers`. */
export interface LeftoverOptions {
  /** Namespaces (URLs or paths) to look in; default: own netns, /run/netns/*, and /proc/<pid>/ns/net of every process. */
  namespaces?: readonly string[];
  /** How `ip` is run; default a new batched executor. */
  exec?: IpExecutor;
}

/** What `adoptOrRemoveLeftovers` found. */
export interface LeftoverReport {
  /** Links kept because their connection is active. */
  readonly adopted: ReadonlyArray<{ readonly netns: string; readonly link: LinkInfo }>;
  /** Links deleted (`netns` and link name). */
  readonly removed: ReadonlyArray<{ readonly netns: string; readonly name: string }>;
}

/** Every namespace this process can see, once each: its own, the named ones, those of all processes. */
export async function visibleNamespaces(): Promise<string[]> {
  const urls = [(await currentNetns()).url];
  const seen = new Set<string>();
  for (const path of await netnsCandidatePaths()) {
    const st = await stat(path).catch(() => undefined);
    if (!st) continue;
    const key = `${st.dev}:${st.ino}`;
    if (seen.has(key)) continue;
    seen.add(key);
    urls.push(path);
  }
  return urls;
}

/**
 * Keeps the links of `owner` whose connection id is in `activeIds` (or that `activeIds` accepts) and deletes the
 * others, in every namespace given (or visible). Namespaces that vanish meanwhile are skipped. Veth peers deleted
 * together are reported once.
 */
export async function adoptOrRemoveLeftovers(
  owner: string,
  activeIds: Iterable<string> | ((connectionId: string) => boolean),
  opts: LeftoverOptions = {},
): Promise<LeftoverReport> {
  const exec = opts.exec ?? createIpExecutor();
  const isActive = typeof activeIds === "function" ? activeIds : Set.prototype.has.bind(new Set(activeIds));
  const prefix = ownerPrefix(owner);
  const handles: Netns[] = [];
  for (const url of opts.namespaces ?? (await visibleNamespaces())) {
    const ns = await openNetns(url).catch(() => undefined);
    if (ns && !handles.some((h) => h.sameAs(ns))) handles.push(ns);
  }
  const adopted: Array<{ netns: string; link: LinkInfo }> = [];
  const removed: Array<{ netns: string; name: string }> = [];
  for (const ns of handles) {
    try {
      const keep = (l: LinkInfo): boolean => l.owner !== undefined && l.owner.owner === owner && isActive(l.owner.connectionId);
      for (const l of await listOwned(exec, ns, prefix)) if (keep(l)) adopted.push({ netns: ns.url, link: l });
      for (const name of await removeOwned(exec, ns, prefix, keep)) removed.push({ netns: ns.url, name });
    } catch (err) {
      if (err instanceof StatusError && err.code === Code.NotFound) continue;
      throw err;
    }
  }
  return { adopted, removed };
}
