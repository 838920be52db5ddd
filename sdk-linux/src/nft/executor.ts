/**
 * Runs `nft` inside a network namespace: a whole table of ours applied or deleted with one `nft -f -` process
 * (one kernel transaction), and our tables listed from `nft -j list tables`.
 */
import type { Logger } from "@nsm-ts/base/log";
import { Code, StatusError } from "@nsm-ts/base/status";
import { type CommandRunner, runCommand } from "../exec.js";
import { classifyIpError } from "../executor.js";
import type { Netns, NetnsTools } from "../netns.js";
import { isNftFamily, NFT_TABLE_PREFIX, type NftTable, type NftTableRef, renderDelete, renderTable } from "./table.js";

/** Applies, deletes and lists our nftables tables in a namespace. */
export interface NftExecutor {
  /** Replaces `table` in `netns` atomically: on failure the previous table (or none) stays. */
  apply(netns: Netns, table: NftTable): Promise<void>;
  /** Deletes the table if it exists. */
  delete(netns: Netns, table: NftTableRef): Promise<void>;
  /** Tables in `netns` whose name starts with the prefix (default `NFT_TABLE_PREFIX`). */
  list(netns: Netns, prefix?: string): Promise<NftTableRef[]>;
  /** Runs a script (`nft -f -`) as one transaction; `what` names it in errors. */
  run(netns: Netns, script: string, what: string): Promise<void>;
  /** Runs a read-only nft command (e.g. `["-j", "list", "table", "inet", "nsmts_x"]`) and returns stdout. */
  query(netns: Netns, args: readonly string[], what: string): Promise<string>;
}

/** Options of `createNftExecutor`. */
export interface NftExecutorOptions {
  /** Process runner; tests inject a fake. */
  run?: CommandRunner;
  /** Path of `nft`; default `nft`. */
  nft?: string;
  /** Path of `nsenter`. */
  tools?: NetnsTools;
  /** Table-name prefix `apply` insists on; default `NFT_TABLE_PREFIX`. */
  prefix?: string;
  /** Debug log of every nft process (argv, bytes, duration). */
  log?: Logger;
  /** Kill an nft process that has not finished after this long; default 30000 (large maps take a while). */
  timeoutMs?: number;
}

/** Maps nft's (or nsenter's) stderr to a status error naming the operation and namespace. */
export function nftFailure(netns: Netns, what: string, stderr: string): StatusError {
  if (/failed to execute nft|nft: (command )?not found/i.test(stderr))
    return new StatusError(Code.FailedPrecondition, `nft: ${what} in ${netns}: nft not found (install nftables)`);
  const f = classifyIpError(stderr.replace(/^\s*\^+\s*$/gm, ""), netns);
  const first = f.reason.split("\n").find((l) => l.startsWith("Error:")) ?? f.reason.split("\n")[0] ?? f.reason;
  return new StatusError(f.code, `nft: ${what} in ${netns}: ${first.trim()}`, { cause: new Error(stderr.trim()) });
}

/** Creates the executor. */
export function createNftExecutor(opts: NftExecutorOptions = {}): NftExecutor {
  const run = opts.run ?? runCommand;
  const nft = opts.nft ?? "nft";
  const prefix = opts.prefix ?? NFT_TABLE_PREFIX;
  const timeoutMs = opts.timeoutMs ?? 30000;

  async function exec(netns: Netns, args: readonly string[], what: string, stdin?: string): Promise<string> {
    const argv = netns.execArgv([nft, ...args], opts.tools);
    const t0 = performance.now();
    let r: Awaited<ReturnType<CommandRunner>>;
    try {
      const signal = AbortSignal.timeout(timeoutMs);
      r = await run(argv, stdin === undefined ? { signal } : { stdin, signal });
    } catch (err) {
      if (err instanceof StatusError && err.code === Code.FailedPrecondition)
        throw new StatusError(Code.FailedPrecondition, `nft: ${what} in ${netns}: ${argv[0]} not found (install nftables)`, { cause: err });
      if (err instanceof StatusError) throw err;
      const e = err as Error;
      const timedOut = e.name === "AbortError" || e.name === "TimeoutError";
      throw new StatusError(
        timedOut ? Code.DeadlineExceeded : Code.Internal,
        `nft: ${what} in ${netns}: ${timedOut ? `nft did not finish within ${timeoutMs} ms` : e.message}`,
        { cause: err },
      );
    }
    opts.log?.debug({ argv, bytes: stdin?.length ?? 0, ms: performance.now() - t0, code: r.code }, "nft: run");
    if (r.code !== 0) throw nftFailure(netns, what, r.stderr);
    return r.stdout;
  }

  const self: NftExecutor = {
    async apply(netns, table) {
      await exec(netns, ["-f", "-"], `apply table ${table.family} ${table.name}`, renderTable(table, prefix));
    },
    async delete(netns, table) {
      await exec(netns, ["-f", "-"], `delete table ${table.family} ${table.name}`, renderDelete(table));
    },
    async list(netns, p = prefix) {
      const out = await exec(netns, ["-j", "list", "tables"], "list tables");
      return parseTables(out).filter((t) => t.name.startsWith(p));
    },
    async run(netns, script, what) {
      await exec(netns, ["-f", "-"], what, script);
    },
    query(netns, args, what) {
      return exec(netns, args, what);
    },
  };
  return self;
}

/** Tables named in `nft -j list tables` output. */
export function parseTables(json: string): NftTableRef[] {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (err) {
    throw new StatusError(Code.Internal, `nft: list tables: output is not JSON: ${json.slice(0, 80)}`, { cause: err });
  }
  const items = (doc as { nftables?: unknown }).nftables;
  if (!Array.isArray(items)) return [];
  const out: NftTableRef[] = [];
  for (const it of items as Array<{ table?: { family?: unknown; name?: unknown } }>) {
    const t = it.table;
    if (t && typeof t.name === "string" && typeof t.family === "string" && isNftFamily(t.family))
      out.push({ family: t.family, name: t.name });
  }
  return out;
}
