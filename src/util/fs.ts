// Writing files so that a crash or Ctrl-C never leaves a half-written checkpoint or report: write a temp
// file beside the target, fsync it, then rename over the target (atomic on POSIX filesystems).
import * as fs from 'node:fs';
import * as path from 'node:path';

export function writeFileAtomic(file: string, data: string | Uint8Array | Uint8Array[]): void {
  const dir = path.dirname(path.resolve(file));
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    const chunks = typeof data === "string" ? [Buffer.from(data, "utf8")] : Array.isArray(data) ? data : [data];
    for (const chunk of chunks) fs.writeSync(fd, chunk);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  // fsync the directory so the rename itself survives a power cut.
  try {
    const dfd = fs.openSync(dir, 'r');
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
  } catch {
    /* some filesystems refuse directory fsync; the rename is still atomic */
  }
}
