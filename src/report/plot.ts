// Line plots as SVG, rendered to PNG by sharp: training curves and trade-off charts people look at
// rather than read.
import sharp from 'sharp';
import { writeFileAtomic } from '../util/fs';

export interface Series {
  name: string;
  points: [number, number][];
  color?: string;
}

export interface PlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  width?: number;
  height?: number;
  /** Draw markers and no lines (scatter), e.g. accuracy against mult-adds. */
  scatter?: boolean;
  logX?: boolean;
  /** Named x positions 1, 2, …, n, labelled by these names instead of numbers (e.g. the runs of an ablation). */
  categories?: readonly string[];
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? step0;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export function linePlotSvg(o: PlotOptions): string {
  const W = o.width ?? 640;
  const H = o.height ?? 400;
  const m = { l: 64, r: 16, t: 36, b: 48 };
  const pts = o.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const tx = (x: number): number => (o.logX ? Math.log10(x) : x);
  let [x0, x1] = [Math.min(...pts.map((p) => tx(p[0]))), Math.max(...pts.map((p) => tx(p[0])))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (!pts.length) [x0, x1, y0, y1] = [0, 1, 0, 1];
  if (o.categories) [x0, x1] = [0.5, o.categories.length + 0.5];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = [y0 - 1, y1 + 1];
  const pad = (y1 - y0) * 0.05;
  [y0, y1] = [y0 - pad, y1 + pad];
  const X = (x: number): number => m.l + ((tx(x) - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (y: number): number => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`,
  ];
  for (const v of niceTicks(y0, y1)) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(v)}" y2="${Y(v)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.l - 6}" y="${Y(v) + 4}" text-anchor="end">${Number(v.toPrecision(4))}</text>`);
  }
  const xTicks: [number, string][] = o.categories
    ? o.categories.map((c, i) => [i + 1, c])
    : niceTicks(x0, x1).map((v) => (o.logX ? 10 ** v : v)).map((xv) => [xv, String(Number(xv.toPrecision(4)))]);
  for (const [xv, label] of xTicks) parts.push(`<text x="${X(xv)}" y="${H - m.b + 16}" text-anchor="middle">${esc(label)}</text>`);
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  o.series.forEach((s, i) => {
    const c = s.color ?? PALETTE[i % PALETTE.length];
    const good = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (!o.scatter && good.length > 1) {
      parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${good.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ')}"/>`);
    }
    if (o.scatter || good.length <= 30) for (const [x, y] of good) parts.push(`<circle cx="${X(x)}" cy="${Y(y)}" r="3.5" fill="${c}"/>`);
    parts.push(`<rect x="${m.l + 10}" y="${m.t + 8 + i * 18}" width="12" height="12" fill="${c}"/>`);
    parts.push(`<text x="${m.l + 28}" y="${m.t + 18 + i * 18}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Renders plots side by side into one PNG, written atomically. */
export async function savePlotsPng(file: string, plots: PlotOptions[]): Promise<void> {
  const svgs = plots.map(linePlotSvg);
  const w = plots.map((p) => p.width ?? 640);
  const h = Math.max(...plots.map((p) => p.height ?? 400));
  const tiles = await Promise.all(svgs.map((s) => sharp(Buffer.from(s)).png().toBuffer()));
  let left = 0;
  const composite = tiles.map((input, i) => {
    const c = { input, left, top: 0 };
    left += w[i];
    return c;
  });
  const png = await sharp({ create: { width: left, height: h, channels: 3, background: '#ffffff' } }).composite(composite).png().toBuffer();
  writeFileAtomic(file, png);
}
