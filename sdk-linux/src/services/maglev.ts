/**
 * Maglev lookup tables (Eisenbud et al., NSDI 2016) for consistent hashing: each of `size` slots names a
 * backend, every backend owns about its weighted share of slots, and removing one backend moves only its own
 * slots. The kernel hashes a flow to a slot (`jhash … mod size`), the table maps the slot to a backend.
 */
import { createHash } from "node:crypto";

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/** The smallest prime at or above `n`. */
export function nextPrime(n: number): number {
  let p = Math.max(2, Math.ceil(n));
  while (!isPrime(p)) p++;
  return p;
}

/** Table size for `n` backends: a prime, about 8 slots per backend for evenness, at least 31, at most ~64k unless n is larger. */
export function maglevSize(n: number): number {
  return nextPrime(Math.max(31, Math.min(n * 8, 65521), n));
}

function hashes(key: string): [number, number] {
  const d = createHash("sha256").update(key).digest();
  return [d.readUInt32BE(0), d.readUInt32BE(4)];
}

/**
 * Fills a table of `size` (a prime) slots with indexes into `keys`; `weights[i]` (default 1) turns per round.
 * The same keys, weights and size always give the same table, whatever their order.
 */
export function maglevTable(keys: readonly string[], size: number, weights: readonly number[] = []): number[] {
  const n = keys.length;
  const table = new Array<number>(size).fill(-1);
  if (n === 0) return table;
  // Backends in a canonical order, so the table does not depend on the order the caller lists them in.
  const order = keys.map((_, i) => i).sort((a, b) => ((keys[a] as string) < (keys[b] as string) ? -1 : 1));
  const offset: number[] = [];
  const skip: number[] = [];
  for (const i of order) {
    const [h1, h2] = hashes(keys[i] as string);
    offset.push(h1 % size);
    skip.push((h2 % (size - 1)) + 1);
  }
  const next = new Array<number>(n).fill(0);
  let filled = 0;
  while (filled < size) {
    for (let j = 0; j < n && filled < size; j++) {
      const turns = Math.max(1, Math.trunc(weights[order[j] as number] ?? 1));
      for (let t = 0; t < turns && filled < size; t++) {
        let c = ((offset[j] as number) + (next[j] as number) * (skip[j] as number)) % size;
        while (table[c] !== -1) {
          next[j] = (next[j] as number) + 1;
          c = ((offset[j] as number) + (next[j] as number) * (skip[j] as number)) % size;
        }
        table[c] = order[j] as number;
        next[j] = (next[j] as number) + 1;
        filled++;
      }
    }
  }
  return table;
}
