/** Table and row printing of the operator CLI (kubectl-like). */

/** Where the CLI writes its results. */
export interface CliOutput {
  write(s: string): unknown;
}

/** Renders rows under a header with columns padded to their widest cell, three spaces apart (as kubectl). */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("   ")
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}

/**
 * Prints watch rows as they come: the header once, and columns as wide as the widest cell so far (rows stay
 * aligned until a longer value shows up, as kubectl's watch output does).
 */
export class RowPrinter {
  private widths: number[];
  private headerDone = false;
  constructor(
    private readonly header: readonly string[],
    private readonly out: CliOutput,
  ) {
    this.widths = header.map((h) => h.length);
  }

  /** Writes one row (and the header before the first). */
  row(cells: readonly string[]): void {
    this.widths = this.widths.map((w, i) => Math.max(w, (cells[i] ?? "").length));
    const line = (cs: readonly string[]): string =>
      cs
        .map((c, i) => (i === cs.length - 1 ? c : c.padEnd(this.widths[i] ?? 0)))
        .join("   ")
        .trimEnd();
    if (!this.headerDone) this.out.write(`${line(this.header)}\n`);
    this.headerDone = true;
    this.out.write(`${line(cells)}\n`);
  }
}
