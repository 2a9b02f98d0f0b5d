/**
 * Atomic file writes, the one protocol every file tapegrad writes goes through (checkpoints, IDX files,
 * downloads): the bytes go to a temporary file beside the target, are fsynced, then renamed over it, and
 * the directory is synced so the rename survives a crash. Readers see the old file or the new one, never
 * a half-written one; on any failure the temporary file is removed and an existing target is untouched.
 * A process killed mid-write cannot remove its temporary file: the next write into that folder does.
 */
import fs from "node:fs";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";

/** Bytes to write: one array, or chunks produced one at a time (a chunk source may throw to abort the write). */
export type Chunks = Uint8Array | Iterable<Uint8Array>;

/** The temporary name beside `path`: `<path>.tmp-<pid>-<random hex>`. */
export function tempPathFor(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`;
}

/** A temporary name made by tempPathFor: the writer's pid and 12 hex digits. */
const TEMP_NAME = /\.tmp-(\d+)-[0-9a-f]{12}$/;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === "EPERM"; // alive, owned by another user
  }
}

/**
 * Removes the temporary files that writes killed mid-way (the process died before its rename) left in
 * `dir`: names made by tempPathFor whose pid is no running process. Returns the removed paths. Called by
 * every atomic write, so the next write into a folder cleans up after a killed one.
 */
export function removeStaleTempFiles(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const match = TEMP_NAME.exec(name);
    if (match === null) continue;
    const pid = Number(match[1]);
    if (pid === process.pid || processAlive(pid)) continue;
    try {
      fs.rmSync(join(dir, name), { force: true });
      removed.push(join(dir, name));
    } catch {
      // another process may have removed it first; a leftover is harmless
    }
  }
  return removed;
}

function chunksOf<T extends Chunks | AsyncIterable<Uint8Array>>(data: T): Exclude<T, Uint8Array> | Uint8Array[] {
  return data instanceof Uint8Array ? [data] : (data as Exclude<T, Uint8Array>);
}

/** The most bytes handed to one write call: node refuses lengths of 2 GiB and more. */
const MAX_WRITE = 2 ** 30;

function writeAllSync(fd: number, chunk: Uint8Array): void {
  let written = 0;
  while (written < chunk.length) written += fs.writeSync(fd, chunk, written, Math.min(chunk.length - written, MAX_WRITE));
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
  removeStaleTempFiles(dirname(path));
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
  removeStaleTempFiles(dirname(path));
  const tmp = tempPathFor(path);
  let handle: fs.promises.FileHandle | undefined;
  let created = false;
  try {
    handle = await fs.promises.open(tmp, "wx");
    created = true;
    for await (const chunk of chunksOf(data)) {
      let written = 0;
      while (written < chunk.length) {
        written += (await handle.write(chunk, written, Math.min(chunk.length - written, MAX_WRITE))).bytesWritten;
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
