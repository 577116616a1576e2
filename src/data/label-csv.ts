// Labels in a CSV file instead of class sub-folders, as many published datasets come (Kaggle's `id,label`):
// a header row, then one image per row — its file, relative to an image root, and its class. The classes are
// the labels seen, sorted by name as ImageFolder sorts folders; the rows keep the file's order. The result is
// an ImageFolder listing, so decoding, resizing, splits and loaders are the folders' own.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageFolder, ImageFolderOptions, ImageFolderSample } from './image-folder';

export interface LabelCsvOptions {
  /** The image and label columns by header name; default: the first two columns. */
  columns?: readonly [string, string];
  /** Extensions tried, in order, for a file named without one (Kaggle's bare ids). Default .png, .jpg, .jpeg. */
  extensions?: readonly string[];
  /** The classes to number labels by (a test CSV takes its training CSV's); a label outside them is an error. */
  classes?: readonly string[];
}

/** One CSV record per line: fields split at commas outside double quotes, "" inside quotes is a quote. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') row.push(field), (field = '');
    else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      [row, field] = [[], ''];
    } else field += ch;
  }
  if (field !== '' || row.length) rows.push([...row, field]);
  // Blank lines carry no record.
  return rows.filter((r) => !(r.length === 1 && r[0].trim() === ''));
}

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The classes and samples a label CSV lists under `root`; every error names the file and the line. */
export function readLabelCsv(csvFile: string, root: string, o: LabelCsvOptions = {}): { classes: readonly string[]; samples: readonly ImageFolderSample[] } {
  let text: string;
  try {
    text = fs.readFileSync(csvFile, 'utf8');
  } catch (e) {
    throw new Error(`label CSV ${csvFile}: cannot read it (${(e as Error).message})`);
  }
  const [header, ...rows] = parseCsv(text.replace(/^\uFEFF/, ''));
  if (!header) throw new Error(`label CSV ${csvFile} is empty: it needs a header row, then one image and label per row`);
  const columns = o.columns ? o.columns.map((c) => header.findIndex((h) => h.trim() === c)) : [0, 1];
  columns.forEach((c, k) => {
    if (c < 0) throw new Error(`label CSV ${csvFile}: no column '${o.columns![k]}' in its header (${header.join(', ')})`);
  });
  if (header.length < 2) throw new Error(`label CSV ${csvFile}: the header has ${header.length} column; it needs an image column and a label column`);
  if (rows.length === 0) throw new Error(`label CSV ${csvFile} lists no images`);
  const extensions = o.extensions ?? ['.png', '.jpg', '.jpeg'];
  const listed = rows.map((r, i) => {
    const line = i + 2;
    const [file, label] = [r[columns[0]]?.trim(), r[columns[1]]?.trim()];
    if (!file || !label) throw new Error(`label CSV ${csvFile}, line ${line}: ${!file ? 'no image file' : `no label for ${file}`}`);
    return { file: resolveImage(root, file, extensions, `label CSV ${csvFile}, line ${line}`), label, line };
  });
  const classes = o.classes ?? [...new Set(listed.map((l) => l.label))].sort(byName);
  const index = new Map(classes.map((c, i) => [c, i]));
  const samples = listed.map(({ file, label, line }) => {
    const y = index.get(label);
    if (y === undefined) throw new Error(`label CSV ${csvFile}, line ${line}: label '${label}' is not one of the training classes (${classes.join(', ')})`);
    return { path: file, label: y };
  });
  return { classes, samples };
}

/** root/file, or root/file + the first extension that exists for a name without one; errors say where. */
function resolveImage(root: string, file: string, extensions: readonly string[], where: string): string {
  const direct = path.join(root, file);
  if (fs.existsSync(direct)) return direct;
  if (!path.extname(file)) {
    const found = extensions.map((e) => direct + e).find((f) => fs.existsSync(f));
    if (found) return found;
  }
  throw new Error(`${where}: no image ${direct}${path.extname(file) ? '' : ` (nor with ${extensions.join(', ')})`}`);
}

/** An ImageFolder of the images a label CSV lists under `root`. */
export function imageFolderFromCsv(root: string, csvFile: string, o: ImageFolderOptions & LabelCsvOptions = {}): ImageFolder {
  return new ImageFolder(root, o, readLabelCsv(csvFile, root, o));
}
