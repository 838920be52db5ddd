/**
 * Maglev lookup tables (Eisenbud et al., NSDI 2016) for consistent hashing: each of `size` slots names a
 * backend, every backend owns about its weighted share of slots, and removing one backend moves only its own
 * slots. The kernel hashes a flow to a slot (`jhash … mod size`), the table maps the slot to a backend.
 */
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

/** FNV-1a (32 bit) with a seed: stable across runs and processes, and cheap for 10,000s of backends. */
function fnv1a(key: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Final avalanche, so that keys differing in the last characters spread over the whole range.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}

function hashes(key: string): [number, number] {
  return [fnv1a(key, 0x5bd1e995), fnv1a(key, 0x27d4eb2f)];
}

/**
 * Fills a table of `size` (a prime) slots with indexes into `keys`; `weights[i]` (default 1) turns per round.
 * The same keys, weights and size always give the same table, whatever their order.
 */
export function maglevTable(keys: readonly string[], size: number, weights: readonly number[] = []): number[] {
  const n = keys.length;
  const table = new Int32Array(size).fill(-1);
  if (n === 0) return Array.from(table);
  // Backends in a canonical order, so the table does not depend on the order the caller lists them in.
  const order = keys.map((_, i) => i).sort((a, b) => ((keys[a] as string) < (keys[b] as string) ? -1 : 1));
  // Each backend walks its own permutation of the slots: start at `offset`, step by `skip` (size is prime, so
  // every skip in 1..size-1 visits every slot). `pos` is where its walk continues.
  const pos = new Int32Array(n);
  const skip = new Int32Array(n);
  const turns = new Int32Array(n);
  for (const [j, i] of order.entries()) {
    const [h1, h2] = hashes(keys[i] as string);
    pos[j] = h1 % size;
    skip[j] = (h2 % (size - 1)) + 1;
    turns[j] = Math.max(1, Math.trunc(weights[i] ?? 1));
  }
  let filled = 0;
  while (filled < size) {
    for (let j = 0; j < n && filled < size; j++) {
      const step = skip[j] as number;
      let c = pos[j] as number;
      for (let t = turns[j] as number; t > 0 && filled < size; t--) {
        while (table[c] !== -1) {
          c += step;
          if (c >= size) c -= size;
        }
        table[c] = order[j] as number;
        filled++;
      }
      pos[j] = c;
    }
  }
  return Array.from(table);
}
