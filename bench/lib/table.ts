// Prints rows as an aligned text table: the first column left-aligned, the others right-aligned
// (they hold figures).
export function printTable(header: readonly string[], rows: readonly (readonly string[])[], write: (line: string) => void = console.log): void {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  for (const row of [header, ...rows]) {
    write(widths.map((width, c) => (c === 0 ? (row[c] ?? '').padEnd(width) : (row[c] ?? '').padStart(width))).join('  ').trimEnd());
  }
}
