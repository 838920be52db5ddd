/**
 * excludedprefixes (server): adds the prefixes listed in a YAML file (`prefixes: [...]`, upstream's file format) to
 * every request's `ip_context.excluded_prefixes`, so IPAM further along never hands out addresses the
 * cluster already uses (pod and service CIDRs). The file is read at creation and re-read whenever its
 * directory changes (Kubernetes replaces ConfigMap files by swapping symlinks, so the directory is watched),
 * until `signal` aborts. A missing file means no prefixes; an invalid one keeps the last good list.
 * Writes: `connection.context.ip_context.excluded_prefixes`. Place before the IPAM element.
 */
import { type FSWatcher, readFileSync, watch } from "node:fs";
import { basename, dirname } from "node:path";
import { create } from "@bufbuild/protobuf";
import { ConnectionContextSchema, IPContextSchema } from "@nsm-ts/api/networkservice";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { parseCidr } from "@nsm-ts/base/netaddr";
import { parse } from "yaml";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";

/** Where NSM deployments mount the excluded prefixes (upstream's path). */
export const DEFAULT_EXCLUDED_PREFIXES_FILE = "/var/lib/networkservicemesh/config/excluded_prefixes.yaml";

/** Options of the excludedprefixes server. */
export interface ExcludedPrefixesServerOptions {
  /** The YAML file; default `DEFAULT_EXCLUDED_PREFIXES_FILE`. */
  path?: string;
  /** Stops watching the file when aborted; without it the watch lasts as long as the process. */
  signal?: AbortSignal;
  /** Called with the new list after every (re)load that changed it. */
  onChange?: (prefixes: readonly string[]) => void;
  /** Logger for reload results and errors; default silent. */
  log?: Logger;
}

/** The excludedprefixes server element, with the list it currently applies. */
export interface ExcludedPrefixesServer extends NetworkServiceElement {
  /** The prefixes currently added to requests. */
  prefixes(): readonly string[];
}

/** Parses the file's text: a `prefixes` list of CIDR strings. Throws with a message naming the bad entry. */
export function parseExcludedPrefixes(text: string): string[] {
  const doc: unknown = parse(text);
  if (doc === null || doc === undefined) return [];
  if (typeof doc !== "object" || Array.isArray(doc)) throw new Error("excludedprefixes: the file must be a mapping with a `prefixes` list");
  const list: unknown = (doc as Record<string, unknown>).prefixes;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new Error("excludedprefixes: `prefixes` must be a list");
  const out: string[] = [];
  for (const p of list) {
    if (typeof p !== "string") throw new Error(`excludedprefixes: prefix ${JSON.stringify(p)} is not a string`);
    if (parseCidr(p, { bare: true, zone: true }) === undefined) throw new Error(`excludedprefixes: invalid prefix "${p}"`);
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

function same(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Creates the excludedprefixes server element and starts watching its file. */
export function newServer(opts: ExcludedPrefixesServerOptions = {}): ExcludedPrefixesServer {
  const file = opts.path ?? DEFAULT_EXCLUDED_PREFIXES_FILE;
  const log = opts.log ?? silentLogger;
  let current: readonly string[] = [];

  const load = (): void => {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
        log.warn({ file, err }, "excludedprefixes: cannot read the file, keeping the previous prefixes");
        return;
      }
      text = "";
    }
    let next: string[];
    try {
      next = parseExcludedPrefixes(text);
    } catch (err) {
      log.warn({ file, err }, "excludedprefixes: invalid file, keeping the previous prefixes");
      return;
    }
    if (same(next, current)) return;
    current = next;
    log.info({ file, prefixes: next }, "excludedprefixes: prefixes loaded");
    opts.onChange?.(next);
  };

  load();
  if (!opts.signal?.aborted) {
    let watcher: FSWatcher | undefined;
    try {
      const base = basename(file);
      watcher = watch(dirname(file), { persistent: false, signal: opts.signal }, (_event, name) => {
        // Symlink swaps show up under other names (..data); re-read on anything but unrelated files.
        if (name === null || name === base || name.startsWith("..")) load();
      });
      watcher.on("error", (err) => log.warn({ file, err }, "excludedprefixes: watch failed"));
    } catch (err) {
      log.warn({ file, err }, "excludedprefixes: cannot watch the directory, prefixes will not be reloaded");
    }
  }

  return {
    name: "excludedprefixes",
    prefixes: () => current,
    request(ctx, req, next) {
      if (current.length > 0) {
        const conn = connectionOf(req);
        conn.context ??= create(ConnectionContextSchema);
        conn.context.ipContext ??= create(IPContextSchema);
        const ip = conn.context.ipContext;
        for (const p of current) if (!ip.excludedPrefixes.includes(p)) ip.excludedPrefixes.push(p);
      }
      return next.request(ctx, req);
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}
