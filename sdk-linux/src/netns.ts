/**
 * Network-namespace handles. NSM names a netns by URL (`file:///proc/<pid>/ns/net`, upstream's
 * `/proc/thread-self/ns/net`, a named netns under /run/netns, or `inode://<dev>/<ino>`); a handle resolves
 * that once, keeps the inode for identity checks and knows how to run `ip` (or any command) inside the
 * namespace.
 *
 * `inode://` is how upstream names a netns in transit; it needs no fd passing when the resolving process
 * sees the other's processes (a forwarder with hostPID), which is why our clients and endpoints send it:
 * a `/proc/<pid>` URL from inside a pod carries the pod's pid, which names another process (or none) in
 * the forwarder's PID namespace.
 */
import { statSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { Code, fail, StatusError } from "@nsm-ts/base/status";
import { runCommand } from "./exec.js";

/** Where `ip netns add` keeps named namespaces. */
export const NETNS_RUN_DIR = "/run/netns";

/** How a namespace is reached: by name under /run/netns (`ip -n`) or by a file path (`nsenter --net=`). */
export type NetnsKind = "named" | "path";

/** The parsed, not yet checked, form of a netns URL. */
export interface NetnsLocation {
  /** `named` for /run/netns/<name> (and /var/run/netns/<name>) or a bare name; `path` otherwise. */
  readonly kind: NetnsKind;
  /** The netns name when `kind` is `named`. */
  readonly name?: string;
  /** Absolute path of the nsfs file (for `self`/`thread-self` paths: this process's concrete pid). */
  readonly path: string;
}

const namePattern = /^[A-Za-z0-9_.-]{1,64}$/;

/** Checks a named-netns name (the characters `ip netns add` accepts and we can pass unquoted). */
export function validateNetnsName(name: string): string {
  if (!namePattern.test(name) || name === "." || name === "..") {
    fail(Code.InvalidArgument, `netns: invalid namespace name ${JSON.stringify(name)} (1-64 of [A-Za-z0-9_.-])`);
  }
  return name;
}

/**
 * Parses a netns URL or path without touching the filesystem. `/proc/self/…` and `/proc/thread-self/…` name
 * the *caller*, so they are rewritten to `/proc/<this pid>/…`; otherwise an `ip`/`nsenter` child process
 * would resolve them to itself. (Node does not move single threads between namespaces, so the process's
 * netns is the thread's.)
 */
export function parseNetnsUrl(url: string, pid: number = process.pid): NetnsLocation {
  let p = url.trim();
  if (p === "") fail(Code.InvalidArgument, "netns: empty netns URL");
  if (p.startsWith("inode:"))
    fail(Code.InvalidArgument, `netns: ${JSON.stringify(url)} names no file; open it with openNetns, which resolves it`);
  if (/^[a-z][a-z0-9+.-]*:/i.test(p)) {
    let u: URL;
    try {
      u = new URL(p);
    } catch (err) {
      throw new StatusError(Code.InvalidArgument, `netns: invalid netns URL ${JSON.stringify(url)}`, { cause: err });
    }
    if (u.protocol !== "file:")
      fail(Code.InvalidArgument, `netns: unsupported scheme ${u.protocol} in ${JSON.stringify(url)} (want file://)`);
    if (u.host !== "" && u.host !== "localhost")
      fail(Code.InvalidArgument, `netns: file URL with host ${u.host} in ${JSON.stringify(url)}`);
    p = decodeURIComponent(u.pathname);
  }
  if (!p.includes("/")) return { kind: "named", name: validateNetnsName(p), path: `${NETNS_RUN_DIR}/${p}` };
  if (!p.startsWith("/")) fail(Code.InvalidArgument, `netns: relative netns path ${JSON.stringify(url)}`);
  const parts = p.split("/").filter((s) => s !== "" && s !== ".");
  if (parts.includes("..")) fail(Code.InvalidArgument, `netns: '..' in netns path ${JSON.stringify(url)}`);
  if (parts[0] === "proc" && (parts[1] === "self" || parts[1] === "thread-self")) parts[1] = String(pid);
  const path = `/${parts.join("/")}`;
  const named = /^\/(?:var\/)?run\/netns\/([^/]+)$/.exec(path);
  if (named?.[1] !== undefined) return { kind: "named", name: validateNetnsName(named[1]), path: `${NETNS_RUN_DIR}/${named[1]}` };
  return { kind: "path", path };
}

/** Commands used to enter namespaces; overridable for unusual installs. */
export interface NetnsTools {
  /** The iproute2 binary; default `ip`. */
  ip?: string;
  /** util-linux nsenter, used for namespaces given by path; default `nsenter`. */
  nsenter?: string;
}

/**
 * An opened network namespace. Identity is the nsfs inode: two handles with the same `inode` (and `dev`)
 * are the same namespace whatever path named them.
 */
export class Netns {
  /** The URL or path the handle was opened from. */
  readonly url: string;
  /** `named` (reached with `ip -n`) or `path` (reached with `nsenter --net=`). */
  readonly kind: NetnsKind;
  /** Name under /run/netns when `kind` is `named`. */
  readonly name: string | undefined;
  /** Absolute path of the nsfs file (for an `inode://` handle: a process in the namespace, re-found by `verify`). */
  get path(): string {
    return this.#path;
  }
  #path: string;
  /** Inode of the namespace (same number as in `net:[…]`). */
  readonly inode: number;
  /** Device of the nsfs file; with `inode` the full identity. */
  readonly dev: number;
  /** True when this is the namespace of the current process, where commands need no switching. */
  readonly isCurrent: boolean;

  /** Use `openNetns`; the constructor does not check that the namespace exists. */
  constructor(url: string, loc: NetnsLocation, inode: number, dev: number, isCurrent: boolean) {
    this.url = url;
    this.kind = loc.kind;
    this.name = loc.name;
    this.#path = loc.path;
    this.inode = inode;
    this.dev = dev;
    this.isCurrent = isCurrent;
  }

  /** The value for `ip link set … netns <value>` / `ip link add … netns <value>` (a name or an nsfs path). */
  get linkTarget(): string {
    return this.kind === "named" && this.name !== undefined ? this.name : this.path;
  }

  /** A short label for messages and logs. */
  toString(): string {
    return this.kind === "named" ? `netns ${this.name ?? this.path}` : `netns ${this.path}`;
  }

  /** True when `other` is the same kernel namespace. */
  sameAs(other: Netns): boolean {
    return this.inode === other.inode && this.dev === other.dev;
  }

  /** argv that runs `ip <args>` inside this namespace (`ip -n` for named, `nsenter --net=` for paths). */
  ipArgv(args: readonly string[], tools: NetnsTools = {}): string[] {
    const ip = tools.ip ?? "ip";
    if (this.isCurrent) return [ip, ...args];
    if (this.kind === "named" && this.name !== undefined) return [ip, "-n", this.name, ...args];
    return [tools.nsenter ?? "nsenter", `--net=${this.path}`, ip, ...args];
  }

  /** argv that runs any command inside this namespace (e.g. `ping`). */
  execArgv(cmd: readonly string[], tools: NetnsTools = {}): string[] {
    if (this.isCurrent) return [...cmd];
    return [tools.nsenter ?? "nsenter", `--net=${this.path}`, ...cmd];
  }

  /**
   * Re-checks that the path still names the same namespace (a pid can die and be reused). A handle opened
   * from `inode://` follows the namespace to another of its processes when the one it used has exited.
   */
  async verify(): Promise<void> {
    const st = await statNetns(this.url, this.#path).catch((err: unknown) => {
      if (isInodeUrl(this.url) && err instanceof StatusError && err.code === Code.NotFound) return undefined;
      throw err;
    });
    if (st?.ino === this.inode && st.dev === this.dev) return;
    if (isInodeUrl(this.url)) {
      this.#path = await findNetnsPath(this.url, this.dev, this.inode);
      return;
    }
    fail(Code.NotFound, `netns: ${this.url} is gone (${this.#path} now names another namespace)`);
  }
}

const inodeUrlPattern = /^inode:\/\/(\d+)\/(\d+)$/;

function isInodeUrl(url: string): boolean {
  return url.startsWith("inode:");
}

/** `inode://<dev>/<ino>` of the namespace at `path` (default: this process's), as clients and endpoints send it. */
export function netnsInodeUrl(path = "/proc/self/ns/net"): string {
  // Sync: element factories call it once at construction; one stat of an nsfs file.
  const st = statSync(path);
  return `inode://${st.dev}/${st.ino}`;
}

/** Files that may name a network namespace: the named ones under /run/netns, then every visible process's. */
export async function netnsCandidatePaths(): Promise<string[]> {
  const named = await readdir(NETNS_RUN_DIR).catch(() => [] as string[]);
  const pids = (await readdir("/proc").catch(() => [] as string[])).filter((e) => /^\d+$/.test(e));
  return [...named.map((n) => `${NETNS_RUN_DIR}/${n}`), ...pids.map((pid) => `/proc/${pid}/ns/net`)];
}

/** Last path found per namespace, so most resolutions cost one stat instead of a /proc walk. */
const inodePaths = new Map<string, string>();

/**
 * Finds a file naming the namespace with this identity: a named netns under /run/netns, else
 * `/proc/<pid>/ns/net` of a process in it. NotFound when no visible process is in it (a forwarder in
 * Kubernetes needs hostPID to see the pods' processes).
 */
/**
 * Pids of our own helper processes that sit inside other namespaces (the persistent `ip -batch` sessions): they keep
 * a namespace alive but are not a sign of its owner, so an `inode://` handle is never resolved through them.
 */
export const helperPids = new Set<number>();

async function findNetnsPath(url: string, dev: number, ino: number): Promise<string> {
  const key = `${dev}/${ino}`;
  const same = async (path: string): Promise<boolean> => {
    try {
      const st = await stat(path);
      return st.ino === ino && st.dev === dev;
    } catch {
      return false; // exited, gone or not ours to see: try the next candidate
    }
  };
  const cached = inodePaths.get(key);
  if (cached !== undefined && (await same(cached))) return cached;
  for (const path of await netnsCandidatePaths()) {
    if (helperPids.has(Number(/^\/proc\/(\d+)\//.exec(path)?.[1]))) continue;
    if (await same(path)) {
      inodePaths.set(key, path);
      return path;
    }
  }
  inodePaths.delete(key);
  return fail(
    Code.NotFound,
    `netns: ${url} not found: no named netns and no visible process is in it (a forwarder in a pod needs hostPID)`,
  );
}

async function statNetns(url: string, path: string): Promise<{ ino: number; dev: number }> {
  try {
    const st = await stat(path);
    return { ino: st.ino, dev: st.dev };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ESRCH") throw new StatusError(Code.NotFound, `netns: ${url} not found (${path})`, { cause: err });
    if (code === "EACCES" || code === "EPERM") {
      throw new StatusError(Code.PermissionDenied, `netns: cannot open ${url} (${path}): needs root or CAP_NET_ADMIN/CAP_SYS_PTRACE`, {
        cause: err,
      });
    }
    throw new StatusError(Code.Internal, `netns: stat ${path}: ${(err as Error).message}`, { cause: err });
  }
}

let ownInode: Promise<{ ino: number; dev: number }> | undefined;
function currentNetnsId(): Promise<{ ino: number; dev: number }> {
  ownInode ??= statNetns("/proc/self/ns/net", `/proc/${process.pid}/ns/net`);
  return ownInode;
}

/**
 * Opens a namespace from a URL (`file:///proc/<pid>/ns/net`, `inode://<dev>/<ino>`), a path
 * (`/proc/thread-self/ns/net`, `/var/run/netns/<name>`, any bind-mounted nsfs file) or a bare named-netns
 * name. Throws NotFound when it does not exist.
 */
export async function openNetns(url: string): Promise<Netns> {
  const m = inodeUrlPattern.exec(url.trim());
  if (isInodeUrl(url.trim()) && m === null)
    fail(Code.InvalidArgument, `netns: invalid inode URL ${JSON.stringify(url)} (want inode://<dev>/<ino>)`);
  const loc = m === null ? parseNetnsUrl(url) : parseNetnsUrl(await findNetnsPath(url, Number(m[1]), Number(m[2])));
  const [st, own] = await Promise.all([statNetns(url, loc.path), currentNetnsId()]);
  return new Netns(url, loc, st.ino, st.dev, st.ino === own.ino && st.dev === own.dev);
}

/** The namespace of the current process (the forwarder's own netns). */
export function currentNetns(): Promise<Netns> {
  return openNetns(`/proc/${process.pid}/ns/net`);
}

/** Creates a named netns with `ip netns add` (for tests and tools); throws AlreadyExists if taken. */
export async function createNamedNetns(name: string, tools: NetnsTools = {}): Promise<Netns> {
  validateNetnsName(name);
  const r = await runCommand([tools.ip ?? "ip", "netns", "add", name]);
  if (r.code !== 0) {
    const msg = r.stderr.trim();
    if (/File exists/i.test(msg)) fail(Code.AlreadyExists, `netns: ${name} already exists`);
    if (/not permitted|permission denied/i.test(msg))
      fail(Code.PermissionDenied, `netns: ip netns add ${name}: needs root or CAP_NET_ADMIN/CAP_SYS_ADMIN (${msg})`);
    fail(Code.Internal, `netns: ip netns add ${name}: ${msg}`);
  }
  return openNetns(name);
}

/** Deletes a named netns; missing namespaces are not an error, so cleanup paths can call it blindly. */
export async function deleteNamedNetns(name: string, tools: NetnsTools = {}): Promise<void> {
  validateNetnsName(name);
  const r = await runCommand([tools.ip ?? "ip", "netns", "delete", name]);
  if (r.code !== 0 && !/No such file/i.test(r.stderr)) {
    fail(Code.Internal, `netns: ip netns delete ${name}: ${r.stderr.trim()}`);
  }
}
