/** Helpers of the delivery tests: bare git repositories and waiting for statuses (by watching, never polling). */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { type IntentStatus, StatusRequestSchema } from "@nsm-ts/api/intents";
import { listStatus } from "./api.js";
import { keys } from "./model.js";
import type { IntentObjects } from "./objects.js";
import { watchPrefix } from "./watch.js";

/** A temp dir removed by `cleanup`. */
export function tempDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), "nsmts-tc-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Creates a bare repository at `path` (branch main). */
export function bareRepo(path: string): string {
  execFileSync("git", ["init", "-q", "--bare", "-b", "main", path]);
  return path;
}

/** The `Nsmts-Sequence` trailers of a repository's main branch, oldest first. */
export function pushedSequences(repo: string): number[] {
  let out = "";
  try {
    out = execFileSync("git", ["--git-dir", repo, "log", "--reverse", "--format=%B%x00", "main"], { encoding: "utf8" });
  } catch {
    return [];
  }
  return out
    .split("\0")
    .map((m) => /^Nsmts-Sequence: (\d+)$/m.exec(m)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number);
}

/** A file of the main branch's tip. */
export function showFile(repo: string, path: string): string {
  return execFileSync("git", ["--git-dir", repo, "show", `main:${path}`], { encoding: "utf8" });
}

/** Resolves with the statuses once `pred` holds for them, checked at every status change. */
export async function waitForStatus(o: IntentObjects, pred: (all: IntentStatus[]) => boolean, timeoutMs = 30_000): Promise<IntentStatus[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    for await (const _ of watchPrefix(o.store.kv, keys.statusPrefix, false, ac.signal)) {
      const all = await listStatus(o, create(StatusRequestSchema, {}));
      if (pred(all)) return all;
    }
    const all = await listStatus(o, create(StatusRequestSchema, {}));
    if (pred(all)) return all;
    throw new Error(
      `timed out waiting for statuses; last: ${JSON.stringify(all.map((s) => [s.intent, s.cluster, s.state, s.attempts, s.lastError]))}`,
    );
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}
