// The reliability diagram of Guo et al. (2017, Fig. 1): each confidence bin's accuracy as a bar against the
// diagonal a calibrated network would follow, the gap to the bin's mean confidence shaded; below, the share
// of images (or pixels) per bin (a gap in a bin of a few images matters little). SVG rendered to PNG by sharp.
import sharp from 'sharp';
import { Calibration } from '../metrics/calibration';
import { writeFileAtomic } from '../util/fs';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** What the calibration counted: a classifier's images, or a segmentation network's pixels. */
export type ReliabilityUnit = 'images' | 'pixels';

export function reliabilitySvg(c: Calibration, title: string, unit: ReliabilityUnit = 'images'): string {
  const [W, left, right, top, plot, gap, hist] = [520, 64, 24, 40, 400, 36, 90];
  const H = top + plot + gap + hist + 40;
  const X = (v: number) => left + v * (W - left - right);
  const Y = (v: number) => top + (1 - v) * plot;
  const n = c.bins.reduce((a, b) => a + b.count, 0);
  const maxShare = Math.max(1e-9, ...c.bins.map((b) => b.count / Math.max(1, n)));
  const HY = (share: number) => top + plot + gap + hist * (1 - share / maxShare);
  const p: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>`];
  p.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`);
  for (const v of [0, 0.2, 0.4, 0.6, 0.8, 1]) {
    p.push(`<line x1="${X(0)}" x2="${X(1)}" y1="${Y(v)}" y2="${Y(v)}" stroke="#eee"/><text x="${left - 6}" y="${Y(v) + 4}" text-anchor="end">${v.toFixed(1)}</text>`);
    p.push(`<text x="${X(v)}" y="${H - 22}" text-anchor="middle">${v.toFixed(1)}</text>`);
  }
  for (const b of c.bins) {
    if (!b.count) continue;
    const [x0, x1] = [X(b.lo) + 1, X(b.hi) - 1];
    p.push(`<rect x="${x0}" y="${Y(b.accuracy)}" width="${x1 - x0}" height="${Y(0) - Y(b.accuracy)}" fill="#1f77b4"/>`);
    const [hi, lo] = [Math.max(b.accuracy, b.confidence), Math.min(b.accuracy, b.confidence)];
    p.push(`<rect x="${x0}" y="${Y(hi)}" width="${x1 - x0}" height="${Y(lo) - Y(hi)}" fill="#d62728" fill-opacity="0.35" stroke="#d62728"/>`);
    p.push(`<rect x="${x0}" y="${HY(b.count / n)}" width="${x1 - x0}" height="${top + plot + gap + hist - HY(b.count / n)}" fill="#7f7f7f"/>`);
  }
  p.push(`<line x1="${X(0)}" y1="${Y(0)}" x2="${X(1)}" y2="${Y(1)}" stroke="#333" stroke-dasharray="5 4"/>`);
  p.push(`<rect x="${X(0)}" y="${Y(1)}" width="${X(1) - X(0)}" height="${plot}" fill="none" stroke="#333"/>`);
  p.push(`<rect x="${left + 10}" y="${top + 10}" width="12" height="12" fill="#1f77b4"/><text x="${left + 28}" y="${top + 20}">accuracy</text>`);
  p.push(`<rect x="${left + 10}" y="${top + 28}" width="12" height="12" fill="#d62728" fill-opacity="0.35" stroke="#d62728"/><text x="${left + 28}" y="${top + 38}">gap to the mean confidence</text>`);
  p.push(`<text x="${left + 10}" y="${top + 60}">ECE ${(100 * c.ece).toFixed(2)}%, MCE ${(100 * c.mce).toFixed(2)}%</text>`);
  p.push(`<text transform="translate(18 ${top + plot / 2}) rotate(-90)" text-anchor="middle">accuracy</text>`);
  p.push(`<text transform="translate(18 ${top + plot + gap + hist / 2}) rotate(-90)" text-anchor="middle">${unit}</text>`);
  p.push(`<text x="${(X(0) + X(1)) / 2}" y="${H - 6}" text-anchor="middle">confidence (top-1 probability)</text>`);
  p.push('</svg>');
  return p.join('\n');
}

/** Reliability diagrams side by side (e.g. before and after temperature scaling) as one PNG, written atomically. */
export async function saveReliabilityPng(file: string, panels: ReadonlyArray<{ calibration: Calibration; title: string; unit?: ReliabilityUnit }>): Promise<void> {
  if (!panels.length) throw new Error('saveReliabilityPng: no diagram to draw');
  const tiles = await Promise.all(panels.map((p) => sharp(Buffer.from(reliabilitySvg(p.calibration, p.title, p.unit))).png().toBuffer()));
  const { width, height } = await sharp(tiles[0]).metadata();
  const png = await sharp({ create: { width: width! * tiles.length, height: height!, channels: 3, background: '#ffffff' } })
    .composite(tiles.map((input, i) => ({ input, left: i * width!, top: 0 })))
    .png()
    .toBuffer();
  writeFileAtomic(file, png);
}
