/**
 * resolv.conf(5) as text: what the forwarder needs of the original (its nameservers are the fallback, its
 * search domains and options stay) and the text that points the resolver at the forwarder. File handling (and
 * restoring the original) is the program's, see `@nsm-ts/sdk-linux`'s `ResolvConfOwner`.
 */

/** The parts of a resolv.conf the forwarder reads. */
export interface ResolvConf {
  /** `nameserver` lines, in order (glibc reads at most three). */
  readonly nameservers: readonly string[];
  /** The `search` (or, when none, `domain`) list. */
  readonly search: readonly string[];
  /** `options` words (e.g. `ndots:5`). */
  readonly options: readonly string[];
}

/** Parses resolv.conf text; unknown lines are ignored, as the resolver does. The last `search`/`domain` wins. */
export function parseResolvConf(text: string): ResolvConf {
  const nameservers: string[] = [];
  let search: string[] = [];
  const options: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const words = line
      .replace(/[#;].*$/, "")
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    const [key, ...rest] = words;
    if (key === "nameserver" && rest[0]) nameservers.push(rest[0]);
    else if (key === "search" || key === "domain") search = rest;
    else if (key === "options") options.push(...rest);
  }
  return { nameservers, search, options };
}

/** Text of a resolv.conf: one nameserver, the search list (deduplicated, order kept) and the options. */
export function renderResolvConf(conf: ResolvConf, header = ""): string {
  const lines = header ? [header] : [];
  for (const ns of conf.nameservers) lines.push(`nameserver ${ns}`);
  const search = [...new Set(conf.search.map((d) => d.replace(/\.+$/, "")).filter(Boolean))];
  if (search.length > 0) lines.push(`search ${search.join(" ")}`);
  if (conf.options.length > 0) lines.push(`options ${conf.options.join(" ")}`);
  return `${lines.join("\n")}\n`;
}
