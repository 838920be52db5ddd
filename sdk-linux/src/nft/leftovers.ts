/**
 * Cleanup and checks for nftables tables of ours: after a restart (tables whose owner is gone) and after a test
 * (nothing of ours may remain). Only tables with our prefix are ever looked at.
 */
import { Code, StatusError } from "@nsm-ts/base/status";
import { visibleNamespaces } from "../mechanisms/leftovers.js";
import { type Netns, openNetns } from "../netns.js";
import { createNftExecutor, type NftExecutor } from "./executor.js";
import { NFT_TABLE_PREFIX, type NftTableRef } from "./table.js";

/** Options of `findNftLeftovers` and `removeNftLeftovers`. */
export interface NftLeftoverOptions {
  /** Namespaces (URLs or paths) to look in; default: own netns, /run/netns/*, and every process's. */
  namespaces?: readonly string[];
  /** Table-name prefix; default `NFT_TABLE_PREFIX`. */
  prefix?: string;
  /** How nft runs; default a new executor. */
  exec?: NftExecutor;
}

/** A table found in a namespace. */
export interface NftTableIn extends NftTableRef {
  /** The namespace URL or path it was found in. */
  readonly netns: string;
}

async function handles(urls: readonly string[] | undefined): Promise<Netns[]> {
  const out: Netns[] = [];
  for (const url of urls ?? (await visibleNamespaces())) {
    const ns = await openNetns(url).catch(() => undefined);
    if (ns && !out.some((h) => h.sameAs(ns))) out.push(ns);
  }
  return out;
}

async function walk(
  opts: NftLeftoverOptions,
  visit: (ns: Netns, t: NftTableRef, exec: NftExecutor) => Promise<boolean>,
): Promise<NftTableIn[]> {
  const exec = opts.exec ?? createNftExecutor();
  const found: NftTableIn[] = [];
  for (const ns of await handles(opts.namespaces)) {
    try {
      for (const t of await exec.list(ns, opts.prefix ?? NFT_TABLE_PREFIX))
        if (await visit(ns, t, exec)) found.push({ ...t, netns: ns.url });
    } catch (err) {
      if (err instanceof StatusError && err.code === Code.NotFound) continue; // the namespace went away meanwhile
      throw err;
    }
  }
  return found;
}

/** Every table of ours in the given (or every visible) namespace; a test expects none after teardown. */
export function findNftLeftovers(opts: NftLeftoverOptions = {}): Promise<NftTableIn[]> {
  return walk(opts, async () => true);
}

/** Deletes the tables of ours that `keep` rejects (default: all) and returns them. */
export function removeNftLeftovers(
  keep: (netns: Netns, table: NftTableRef) => boolean = () => false,
  opts: NftLeftoverOptions = {},
): Promise<NftTableIn[]> {
  return walk(opts, async (ns, t, exec) => {
    if (keep(ns, t)) return false;
    await exec.delete(ns, t);
    return true;
  });
}
