// The confusion matrix as a picture: which classes a network mistakes for which is read off a heat map
// faster than off a table. Rows are true classes, normalized to fractions of their samples (a class's
// recall sits on the diagonal), columns predicted ones; SVG rendered to PNG by sharp, as the curves are.
import sharp from 'sharp';
import { writeFileAtomic } from '../util/fs';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
/** White for 0 to the curves' blue (#1f77b4) for 1. */
export const CELL_LOW = [255, 255, 255] as const;
export const CELL_HIGH = [31, 119, 180] as const;

/** The cell colour of a row fraction p in [0, 1]: white to blue, linearly. */
export function cellColor(p: number): [number, number, number] {
  const q = Math.min(1, Math.max(0, p));
  return [0, 1, 2].map((i) => Math.round(CELL_LOW[i] + q * (CELL_HIGH[i] - CELL_LOW[i]))) as [number, number, number];
}

export interface ConfusionLayout {
  /** Side of one cell in pixels. */
  cell: number;
  /** Top-left corner of the grid. */
  left: number;
  top: number;
  width: number;
  height: number;
}

/** Where the grid goes for k classes whose longest name has `longest` characters. */
export function confusionLayout(k: number, longest: number): ConfusionLayout {
  const cell = Math.max(14, Math.min(48, Math.floor(560 / k)));
  const names = Math.min(160, 7 * longest + 12);
  const left = names + 24;
  const top = 44 + names; // column names written upwards above the grid
  return { cell, left, top, width: left + k * cell + 16, height: top + k * cell + 16 };
}

/** Rows as fractions of their sums (a row without samples stays 0). */
export function rowFractions(counts: readonly (readonly number[])[]): number[][] {
  return counts.map((row) => {
    const n = row.reduce((a, b) => a + b, 0);
    return row.map((v) => (n ? v / n : 0));
  });
}

export function confusionSvg(counts: readonly (readonly number[])[], classes: readonly string[], title: string): string {
  const k = counts.length;
  if (k === 0 || counts.some((r) => r.length !== k) || classes.length !== k) throw new Error(`confusion matrix: need ${classes.length} × ${classes.length} counts, got ${k} × ${counts[0]?.length ?? 0}`);
  const f = rowFractions(counts);
  const L = confusionLayout(k, Math.max(...classes.map((c) => c.length)));
  const font = Math.max(8, Math.min(13, Math.floor(L.cell * 0.32)));
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${L.width}" height="${L.height}" font-family="DejaVu Sans, sans-serif">`);
  parts.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  parts.push(`<text x="${L.width / 2}" y="20" font-size="14" text-anchor="middle">${esc(title)}</text>`);
  parts.push(`<text x="${L.left + (k * L.cell) / 2}" y="38" font-size="11" text-anchor="middle" fill="#555">predicted class →</text>`);
  parts.push(`<text x="12" y="${L.top + (k * L.cell) / 2}" font-size="11" text-anchor="middle" fill="#555" transform="rotate(-90 12 ${L.top + (k * L.cell) / 2})">true class → (rows sum to 100%)</text>`);
  for (let i = 0; i < k; i++) {
    const cy = L.top + i * L.cell + L.cell / 2;
    parts.push(`<text x="${L.left - 6}" y="${cy + 4}" font-size="${font}" text-anchor="end">${esc(classes[i])}</text>`);
    const cx = L.left + i * L.cell + L.cell / 2;
    parts.push(`<text x="${cx + 4}" y="${L.top - 6}" font-size="${font}" transform="rotate(-90 ${cx + 4} ${L.top - 6})">${esc(classes[i])}</text>`);
    for (let j = 0; j < k; j++) {
      const [r, g, b] = cellColor(f[i][j]);
      const x = L.left + j * L.cell;
      const y = L.top + i * L.cell;
      parts.push(`<rect x="${x}" y="${y}" width="${L.cell}" height="${L.cell}" fill="rgb(${r},${g},${b})"/>`);
      // Percentages where they fit; the colour alone for many classes.
      if (L.cell >= 26 && f[i][j] >= 0.005) {
        const ink = f[i][j] > 0.55 ? '#ffffff' : '#000000';
        parts.push(`<text x="${x + L.cell / 2}" y="${y + L.cell / 2 + font / 3}" font-size="${font}" text-anchor="middle" fill="${ink}">${Math.round(100 * f[i][j])}</text>`);
      }
    }
  }
  parts.push(`<rect x="${L.left}" y="${L.top}" width="${k * L.cell}" height="${k * L.cell}" fill="none" stroke="#888"/>`);
  parts.push('</svg>');
  return parts.join('\n');
}

/** Writes the heat map as a PNG (atomically: temp file, then rename). */
export async function saveConfusionPng(file: string, counts: readonly (readonly number[])[], classes: readonly string[], title: string): Promise<void> {
  const png = await sharp(Buffer.from(confusionSvg(counts, classes, title))).png().toBuffer();
  writeFileAtomic(file, png);
}
