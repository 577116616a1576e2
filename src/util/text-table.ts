// Plain-text tables for the terminal, as torchinfo and torch.profiler print them: the first column
// left-aligned, the others right-aligned (numbers), three spaces between columns.

/** The header, a rule of `ruleChar` as wide as the table, then the rows. */
export function textTable(head: readonly string[], body: readonly (readonly string[])[], ruleChar = '-'): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('   ');
  const rule = ruleChar.repeat(widths.reduce((a, b) => a + b, 0) + 3 * (widths.length - 1));
  return [line(head), rule, ...body.map(line)];
}
