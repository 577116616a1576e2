// `tsvision serve model.onnx`: the browser examples (examples/browser/) with an exported network, from a
// local HTTP server — the page that fits the model card's task, the .onnx file and its card, and
// onnxruntime-web's wasm runtime with the MIME types browsers insist on. Only files under those three places
// are served; everything is read-only.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { AddressInfo } from 'node:net';
import { CARD_FORMAT, ModelCard, cardPath } from '../export/card';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.map': 'application/json; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
};

export interface ServeOptions {
  /** 0 picks a free port. */
  port: number;
  host: string;
}

export interface Served {
  url: string;
  card: ModelCard;
  close(): Promise<void>;
}

/** Reads and checks the card beside `onnxFile`; the error says how to get one. */
export function readCard(onnxFile: string): ModelCard {
  if (!fs.existsSync(onnxFile)) throw new Error(`${onnxFile}: no such file`);
  const file = cardPath(onnxFile);
  if (!fs.existsSync(file)) throw new Error(`${file}: no model card beside ${onnxFile}; export again with \`tsvision export <checkpoint> -o ${onnxFile}\`, which writes both`);
  let card: ModelCard;
  try {
    card = JSON.parse(fs.readFileSync(file, 'utf8')) as ModelCard;
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (card?.format !== CARD_FORMAT) throw new Error(`${file}: not a tsvision model card (format '${String(card?.format)}')`);
  return card;
}

/** The folder of onnxruntime-web's browser files (ort.min.js and the wasm runtimes). */
function ortWebDist(): string {
  return path.dirname(require.resolve('onnxruntime-web')); // …/onnxruntime-web/dist/ort.node.min.js
}

export async function serveModel(onnxFile: string, o: ServeOptions): Promise<Served> {
  const card = readCard(onnxFile);
  const pages = path.join(__dirname, '..', '..', '..', 'examples', 'browser');
  const ort = ortWebDist();
  const files = (p: string): string | null => {
    if (p === '/model.onnx') return path.resolve(onnxFile);
    if (p === '/model.json') return path.resolve(cardPath(onnxFile));
    const [root, rel] = p.startsWith('/node_modules/onnxruntime-web/dist/') ? [ort, p.slice('/node_modules/onnxruntime-web/dist/'.length)] : [pages, p.slice(1)];
    const full = path.resolve(root, rel);
    return full.startsWith(root + path.sep) ? full : null; // no '..' out of the three places
  };
  const page = card.task === 'segment' ? 'segment.html' : 'index.html';
  const server = http.createServer((req, res) => {
    let p: string;
    try {
      p = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      res.writeHead(400).end('bad request');
      return;
    }
    if (p === '/favicon.ico') {
      res.writeHead(204).end(); // browsers ask for one; an empty answer keeps their consoles free of 404s
      return;
    }
    if (p === '/') {
      res.writeHead(302, { Location: `/${page}` }).end();
      return;
    }
    const file = files(p);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    fs.stat(file ?? '', (err, st) => {
      if (!file || err || !st.isFile()) {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end(`not found: ${p}`);
        return;
      }
      res.writeHead(200, {
        'Content-Type': MIME[path.extname(file)] ?? 'application/octet-stream',
        'Content-Length': st.size,
        'Cache-Control': 'no-store',
        // Cross-origin isolation: the pages may then share memory with workers, so onnxruntime-web runs threads.
        'Cross-Origin-Opener-Policy': 'same-origin',
        'Cross-Origin-Embedder-Policy': 'require-corp',
      });
      if (req.method === 'HEAD') res.end();
      else fs.createReadStream(file).pipe(res);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new Error(e.code === 'EADDRINUSE' ? `port ${o.port} is in use; pick another with --port (0: any free port)` : `cannot listen on ${o.host}:${o.port}: ${e.message}`)));
    server.listen(o.port, o.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  return {
    url: `http://${host}:${port}/${page}`,
    card,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
