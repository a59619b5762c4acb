/** A Markdown table with its columns padded, so the doc reads as a table in plain text too. */
export function markdownTable(header: string[], rawRows: string[][]): string {
  // A '|' inside a cell would end it.
  const rows = rawRows.map((r) => r.map((c) => c.replace(/\|/g, '\\|')));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}
