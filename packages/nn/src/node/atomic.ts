/**
 * Atomic file writes, the one protocol every file tapegrad writes goes through (checkpoints, IDX files,
 * downloads): the bytes go to a temporary file beside the target, are fsynced, then renamed over it, and
 * the directory is synced so the rename survives a crash. Readers see the old file or the new one, never
 * a half-written one; on any failure the temporary file is removed and an existing target is untouched.
 */
import fs from "node:fs";
import { randomBytes } from "node:crypto";
import { dirname } from "node:path";

/** Bytes to write: one array, or chunks produced one at a time (a chunk source may throw to abort the write). */
export type Chunks = Uint8Array | Iterable<Uint8Array>;

/** The temporary name beside `path`: `<path>.tmp-<pid>-<random hex>`. */
export function tempPathFor(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`;
}

function chunksOf<T extends Chunks | AsyncIterable<Uint8Array>>(data: T): Exclude<T, Uint8Array> | Uint8Array[] {
  return data instanceof Uint8Array ? [data] : (data as Exclude<T, Uint8Array>);
}

function writeAllSync(fd: number, chunk: Uint8Array): void {
  let written = 0;
  while (written < chunk.length) written += fs.writeSync(fd, chunk, written, chunk.length - written);
}

/** Makes the rename itself durable. Best effort: some platforms (Windows) cannot open a directory. */
function syncDirectorySync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch {
    // the data is already synced and renamed; only the directory entry's durability is at stake
  } finally {
    if (fd !== undefined) {
      try { fs.closeSync(fd); } catch { /* as above */ }
    }
  }
}

async function syncDirectory(dir: string): Promise<void> {
  let handle: fs.promises.FileHandle | undefined;
  try {
    handle = await fs.promises.open(dir, "r");
    await handle.sync();
  } catch {
    // see syncDirectorySync
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * Writes `data` to `path` atomically (temporary file, fsync, rename). Throws the underlying error (or the
 * one a chunk source threw) after removing the temporary file.
 * @example writeFileAtomic("labels.idx", bytes);
 */
export function writeFileAtomic(path: string, data: Chunks): void {
  const tmp = tempPathFor(path);
  let fd: number | undefined;
  let created = false;
  try {
    fd = fs.openSync(tmp, "wx");
    created = true;
    for (const chunk of chunksOf(data)) writeAllSync(fd, chunk);
    fs.fsyncSync(fd);
    const closing = fd;
    fd = undefined;
    fs.closeSync(closing);
    fs.renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) {
      try { fs.closeSync(fd); } catch { /* already failing; the original error matters */ }
    }
    if (created) {
      try { fs.rmSync(tmp, { force: true }); } catch { /* nothing more we can do */ }
    }
    throw err;
  }
  syncDirectorySync(dirname(path));
}

/** The async writeFileAtomic; `data` may also be an async source (a download's body). */
export async function writeFileAtomicAsync(path: string, data: Chunks | AsyncIterable<Uint8Array>): Promise<void> {
  const tmp = tempPathFor(path);
  let handle: fs.promises.FileHandle | undefined;
  let created = false;
  try {
    handle = await fs.promises.open(tmp, "wx");
    created = true;
    for await (const chunk of chunksOf(data)) {
      let written = 0;
      while (written < chunk.length) {
        written += (await handle.write(chunk, written, chunk.length - written)).bytesWritten;
      }
    }
    await handle.sync();
    const closing = handle;
    handle = undefined;
    await closing.close();
    await fs.promises.rename(tmp, path);
  } catch (err) {
    if (handle !== undefined) await handle.close().catch(() => undefined);
    if (created) await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dirname(path));
}
