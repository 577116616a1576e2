// Markdown tables: written into reports and summaries, read back by tests and tooling.

/** A GitHub-flavoured markdown table. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Every markdown table in `md`, as header cells and body rows of trimmed cells (for tests and tooling). */
export function parseMarkdownTables(md: string): { header: string[]; rows: string[][] }[] {
  const tables: { header: string[]; rows: string[][] }[] = [];
  const cells = (l: string): string[] => l.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
  const lines = md.split('\n');
  for (let i = 0; i + 1 < lines.length; i++) {
    if (!lines[i].trim().startsWith('|') || !/^\|(\s*:?-+:?\s*\|)+\s*$/.test(lines[i + 1].trim())) continue;
    const t = { header: cells(lines[i]), rows: [] as string[][] };
    let j = i + 2;
    for (; j < lines.length && lines[j].trim().startsWith('|'); j++) t.rows.push(cells(lines[j]));
    tables.push(t);
    i = j - 1;
  }
  return tables;
}
