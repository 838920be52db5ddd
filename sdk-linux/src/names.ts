/**
 * Interface names and the ownership mark. Every link nsm-ts creates carries an alias
 * `nsm-ts:<owner>:<connection id>[:<role>]`, so a restarted forwarder can list what its predecessor left and
 * adopt or remove it; the alias survives moves between namespaces and renames.
 */
import { createHash } from "node:crypto";
import { Code, fail } from "@nsm-ts/base/status";

/** Linux IFNAMSIZ minus the terminating NUL. */
export const MAX_IFNAME_LEN = 15;

/** Kernel limit of an interface alias (IFALIASZ minus NUL). */
export const MAX_ALIAS_LEN = 255;

/** First field of every alias nsm-ts writes. */
export const ALIAS_PREFIX = "nsm-ts";

/**
 * Checks an interface name as the kernel does (1–15 bytes, no `/`, `:` or whitespace, not `.`/`..`) and
 * additionally rejects `%` (a kernel name template), quotes and `#`, which `ip -batch` would interpret.
 */
export function validateIfName(name: string, what = "interface name"): string {
  const bytes = Buffer.byteLength(name, "utf8");
  if (bytes === 0) fail(Code.InvalidArgument, `kernel: empty ${what}`);
  if (bytes > MAX_IFNAME_LEN)
    fail(Code.InvalidArgument, `kernel: ${what} ${JSON.stringify(name)} is ${bytes} bytes, the limit is ${MAX_IFNAME_LEN}`);
  if (name === "." || name === "..") fail(Code.InvalidArgument, `kernel: ${what} ${JSON.stringify(name)} is reserved`);
  if (/[\s/:%"'#\\]/.test(name) || /[^\x21-\x7e]/.test(name)) {
    fail(Code.InvalidArgument, `kernel: ${what} ${JSON.stringify(name)} has a character not allowed in interface names`);
  }
  return name;
}

/** True when `name` is a valid interface name (see `validateIfName`). */
export function isValidIfName(name: string): boolean {
  try {
    validateIfName(name);
    return true;
  } catch {
    return false;
  }
}

// Alias fields are percent-encoded so that any owner or connection id (UUIDs, paths, names with ':')
// round-trips and the alias stays a single unquoted token for `ip -batch`.
function encodeField(s: string): string {
  return s.replace(/[^A-Za-z0-9._~-]/g, (c) =>
    Array.from(Buffer.from(c, "utf8"), (b) => `%${b.toString(16).toUpperCase().padStart(2, "0")}`).join(""),
  );
}

/** The ownership mark decoded from an alias. */
export interface OwnerMark {
  /** Who created the link (e.g. the forwarder's name). */
  readonly owner: string;
  /** The NSM connection id the link belongs to. */
  readonly connectionId: string;
  /** Optional role of the link in the connection (`client`, `endpoint`, `vxlan`, …). */
  readonly role?: string;
}

/** Builds the alias `nsm-ts:<owner>:<connection id>[:<role>]` (fields percent-encoded); throws if over 255 bytes. */
export function ownerAlias(mark: OwnerMark): string {
  if (mark.owner === "") fail(Code.InvalidArgument, "kernel: empty owner in alias");
  if (mark.connectionId === "") fail(Code.InvalidArgument, "kernel: empty connection id in alias");
  const fields = [ALIAS_PREFIX, encodeField(mark.owner), encodeField(mark.connectionId)];
  if (mark.role !== undefined && mark.role !== "") fields.push(encodeField(mark.role));
  const alias = fields.join(":");
  if (alias.length > MAX_ALIAS_LEN)
    fail(Code.InvalidArgument, `kernel: alias for connection ${mark.connectionId} is ${alias.length} bytes, the limit is ${MAX_ALIAS_LEN}`);
  return alias;
}

/** The alias prefix that selects every link of one owner (`nsm-ts:<owner>:`); pass it to `listOwned`. */
export function ownerPrefix(owner?: string): string {
  return owner === undefined ? `${ALIAS_PREFIX}:` : `${ALIAS_PREFIX}:${encodeField(owner)}:`;
}

/** Decodes an alias written by `ownerAlias`; undefined for aliases nsm-ts did not write. */
export function parseOwnerAlias(alias: string | undefined): OwnerMark | undefined {
  if (alias === undefined) return undefined;
  const f = alias.split(":");
  if (f[0] !== ALIAS_PREFIX || f.length < 3 || f.length > 4) return undefined;
  try {
    const owner = decodeURIComponent(f[1] ?? "");
    const connectionId = decodeURIComponent(f[2] ?? "");
    if (owner === "" || connectionId === "") return undefined;
    return f[3] === undefined ? { owner, connectionId } : { owner, connectionId, role: decodeURIComponent(f[3]) };
  } catch {
    return undefined;
  }
}

/** Checks an alias is a single token `ip -batch` passes through unchanged. */
export function validateAlias(alias: string): string {
  if (alias === "" || alias.length > MAX_ALIAS_LEN || /[\s"'#\\]/.test(alias) || /[^\x21-\x7e]/.test(alias)) {
    fail(Code.InvalidArgument, `kernel: invalid alias ${JSON.stringify(alias)} (1-${MAX_ALIAS_LEN} printable ASCII, no spaces/quotes/#)`);
  }
  return alias;
}

/**
 * A deterministic interface name `<prefix><hash of seed>` of at most 15 bytes, e.g. for the temporary names
 * of veth ends in the forwarder's netns before they are moved and renamed: the same connection always gets
 * the same name, so a retry finds its own leftover instead of creating a second one.
 */
export function hashedIfName(prefix: string, seed: string): string {
  const room = MAX_IFNAME_LEN - Buffer.byteLength(prefix, "utf8");
  if (room < 6) fail(Code.InvalidArgument, `kernel: prefix ${JSON.stringify(prefix)} leaves fewer than 6 characters for the hash`);
  return validateIfName(prefix + createHash("sha256").update(seed).digest("hex").slice(0, room));
}
