/**
 * Takes over a resolv.conf for a local DNS forwarder and gives it back: the file is rewritten in place (never
 * renamed: /etc/resolv.conf is a bind mount in a pod, and `ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf
 * over it), with the original kept below as comments, so a client killed before it could restore leaves a file
 * the next start recovers from.
 */
import { readFile, writeFile } from "node:fs/promises";
import type { Logger } from "@nsm-ts/base/log";
import { parseResolvConf, type ResolvConf, renderResolvConf } from "@nsm-ts/sdk/dns";

/**
 * True when `path` is a mount point of this process's mount namespace (/proc/self/mountinfo): a pod's
 * /etc/resolv.conf is, and so is the one `ip netns exec` bind-mounts from /etc/netns/<ns>; a bare host's is not,
 * and rewriting it would change the resolver of every process on the machine.
 */
export async function isMountPoint(path: string): Promise<boolean> {
  const info = await readFile("/proc/self/mountinfo", "utf8").catch(() => "");
  // Field 5 is the mount point, with space, tab, newline and backslash written as octal escapes.
  const decodeOctal = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  return info.split("\n").some((line) => decodeOctal(line.split(" ")[4] ?? "") === path);
}

/** The first line of a file we wrote. */
export const RESOLV_CONF_MARKER = "# written by nsm-ts cmd-nsc: its DNS forwarder; the original follows as comments and comes back on exit";
const ORIGINAL = "#nsm-ts-original ";

/** The original text of a resolv.conf: the file itself, or what a file we wrote keeps in its comments. */
export function originalOf(text: string): string {
  const lines = text.split("\n");
  if (lines[0] !== RESOLV_CONF_MARKER) return text;
  return lines
    .filter((l) => l.startsWith(ORIGINAL))
    .map((l) => l.slice(ORIGINAL.length))
    .join("\n");
}

/** Text pointing the resolver at `nameserver`: the original's options, `search` first then the original's. */
export function takeoverText(original: string, nameserver: string, search: readonly string[]): string {
  const conf = parseResolvConf(original);
  const ours = renderResolvConf(
    { nameservers: [nameserver], search: [...search, ...conf.search], options: conf.options },
    RESOLV_CONF_MARKER,
  );
  // Every line, the empty one after a final newline too, so the original comes back byte for byte.
  const kept = original.split("\n");
  return `${ours}${kept.map((l) => `${ORIGINAL}${l}`).join("\n")}\n`;
}

/** A resolv.conf this process may point at its forwarder and must restore. */
export class ResolvConfOwner {
  private written = false;

  private constructor(
    readonly path: string,
    /** The original text (recovered from our comments if a previous run could not restore it). */
    readonly originalText: string,
    /** The original, parsed: its nameservers are the forwarder's fallback. */
    readonly original: ResolvConf,
    private readonly log: Logger | undefined,
  ) {}

  /** Reads `path`; a file left by a run that did not restore is put back to its original first. */
  static async open(path: string, log?: Logger): Promise<ResolvConfOwner> {
    const text = await readFile(path, "utf8");
    const original = originalOf(text);
    if (original !== text) {
      await writeFile(path, original);
      log?.warn({ path }, "dns: restored a resolver config an earlier run left pointing at its forwarder");
    }
    return new ResolvConfOwner(path, original, parseResolvConf(original), log);
  }

  /** Points the resolver at `nameserver` (an IP: the resolver asks port 53) with `search` before the original's. */
  async pointAt(nameserver: string, search: readonly string[]): Promise<void> {
    await writeFile(this.path, takeoverText(this.originalText, nameserver, search));
    if (!this.written) this.log?.info({ path: this.path, nameserver, search }, "dns: resolver config points at the forwarder");
    this.written = true;
  }

  /** Writes the original back if we changed the file; safe to call twice. */
  async restore(): Promise<void> {
    if (!this.written) return;
    this.written = false;
    await writeFile(this.path, this.originalText);
    this.log?.info({ path: this.path }, "dns: resolver config restored");
  }
}
