/**
 * The map-ip file (upstream's format): a YAML mapping of addresses, internal → external and external → internal,
 * e.g. `10.0.0.5: 203.0.113.5`. Watched: a change takes effect on the next call; a file that is missing or does
 * not parse leaves an empty map (the latter logged), so a bad edit never stops the proxy.
 */
import { type FSWatcher, readFileSync, watch } from "node:fs";
import { basename, dirname } from "node:path";
import type { Logger } from "@nsm-ts/base/log";
import { parse } from "yaml";

/** Parses the file's text; throws on anything but a mapping of strings. */
export function parseIpMap(text: string): Record<string, string> {
  const data: unknown = parse(text);
  if (data === null || data === undefined) return {};
  if (typeof data !== "object" || Array.isArray(data)) throw new Error("expected a mapping of addresses");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data as Record<string, unknown>)) {
    if (typeof v !== "string" && typeof v !== "number") throw new Error(`address ${JSON.stringify(k)} maps to a non-address`);
    out[k] = String(v);
  }
  return out;
}

/** A watched map file: `current()` is the latest map; `close()` stops watching. */
export interface IpMapFile {
  current(): Readonly<Record<string, string>>;
  close(): void;
}

/** Reads `path` now and again whenever its directory changes; `onLoad` sees every map read. */
export function watchIpMap(path: string, log: Logger, onLoad?: (map: Readonly<Record<string, string>>) => void): IpMapFile {
  let map: Record<string, string> = {};
  const load = (): void => {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch {
      map = {};
      onLoad?.(map);
      return;
    }
    try {
      map = parseIpMap(text);
    } catch (err) {
      log.error({ file: path, err }, "cmd-nsmgr-proxy: ignoring an unreadable map-ip file (using an empty map)");
      map = {};
    }
    onLoad?.(map);
  };
  load();
  let watcher: FSWatcher | undefined;
  try {
    // The directory, not the file: editors and ConfigMap updates replace the file rather than write it.
    watcher = watch(dirname(path), (_ev, name) => {
      if (name === null || name === basename(path) || name.startsWith("..")) load();
    });
  } catch (err) {
    log.warn({ file: path, err }, "cmd-nsmgr-proxy: cannot watch the map-ip file's directory, using it as read at start");
  }
  return { current: () => map, close: () => watcher?.close() };
}
