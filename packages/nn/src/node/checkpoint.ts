/**
 * Checkpoint files: safetensors (see ../safetensors.ts for the format) saved atomically and read back one
 * tensor at a time, so a file is never held in memory twice.
 */
import fs from "node:fs";
import { Tensor } from "@tapegrad/autograd";
import {
  CheckpointError, type LoadedTensor, type TensorLike, allocateTensor, fail, fileChunks, fillFromLittleEndian,
  parseHeader, planWrite, readHeaderLength, setEntry,
} from "../safetensors.ts";
import { writeFileAtomic, writeFileAtomicAsync } from "./atomic.ts";

function rethrowSaveError(err: unknown, path: string): never {
  if (err instanceof CheckpointError) throw err;
  fail(`save ${path}`, err instanceof Error ? err.message : String(err), err);
}

/**
 * Writes a checkpoint atomically: the data goes to a temp file in the same directory, is fsynced, then
 * renamed over `path`. On any failure the temp file is removed and an existing `path` is left untouched.
 * A state dict that cannot be saved fails before anything touches the disk.
 * @example saveSync("model.safetensors", model.stateDict());
 */
export function saveSync(path: string, stateDict: Record<string, TensorLike>, metadata?: Record<string, string>): void {
  const where = `save ${path}`;
  const plan = planWrite(stateDict, metadata, where);
  try {
    writeFileAtomic(path, fileChunks(plan, where));
  } catch (err) {
    rethrowSaveError(err, path);
  }
}

/** Async saveSync: same atomic temp-file-then-rename protocol. */
export async function save(path: string, stateDict: Record<string, TensorLike>, metadata?: Record<string, string>): Promise<void> {
  const where = `save ${path}`;
  const plan = planWrite(stateDict, metadata, where);
  try {
    await writeFileAtomicAsync(path, fileChunks(plan, where));
  } catch (err) {
    rethrowSaveError(err, path);
  }
}

/** The most bytes asked of one read call: node refuses lengths of 2 GiB and more. */
const MAX_READ = 2 ** 30;

function readExactSync(fd: number, out: Uint8Array, position: number, fileLength: number, where: string): Uint8Array {
  const length = out.length;
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, out, done, Math.min(length - done, MAX_READ), position + done);
    if (n === 0) fail(where, `truncated: file ended at byte ${position + done} of ${fileLength} while reading (modified during load?)`);
    done += n;
  }
  return out;
}

async function readExact(handle: fs.promises.FileHandle, out: Uint8Array, position: number, fileLength: number, where: string): Promise<Uint8Array> {
  const length = out.length;
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(out, done, Math.min(length - done, MAX_READ), position + done);
    if (bytesRead === 0) fail(where, `truncated: file ended at byte ${position + done} of ${fileLength} while reading (modified during load?)`);
    done += bytesRead;
  }
  return out;
}

function toTensors(loaded: Record<string, LoadedTensor>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  // NOTE: the constructor adopts the freshly read array; tensor() would copy it, doubling peak memory. An
  // int64 entry becomes a float64 tensor of its integers that is saved as int64 again.
  for (const [name, t] of Object.entries(loaded)) {
    const tensor = new Tensor(t.data, t.shape);
    setEntry(out, name, t.dtype === "int64" ? Object.assign(tensor, { storageDtype: "int64" as const }) : tensor);
  }
  return out;
}

/**
 * Reads a checkpoint with its metadata, as plain data. Reads the header first and then each tensor straight
 * into its own typed array, so the file is never held in memory twice.
 */
export function loadStateSync(path: string): { tensors: Record<string, LoadedTensor>; metadata: Record<string, string> } {
  let fd: number;
  try {
    fd = fs.openSync(path, "r");
  } catch (err) {
    fail(`load ${path}`, err instanceof Error ? err.message : String(err), err);
  }
  try {
    const fileLength = fs.fstatSync(fd).size;
    const headerLength = readHeaderLength(readExactSync(fd, new Uint8Array(Math.min(8, fileLength)), 0, fileLength, path), fileLength, path);
    const { dataStart, entries, metadata } = parseHeader(readExactSync(fd, new Uint8Array(headerLength), 8, fileLength, path), fileLength, path);
    const tensors: Record<string, LoadedTensor> = {};
    for (const e of entries) {
      const { data, raw } = allocateTensor(e.dtype, e.end - e.begin);
      readExactSync(fd, raw, dataStart + e.begin, fileLength, path);
      setEntry(tensors, e.name, { shape: e.shape, dtype: e.dtype, data: fillFromLittleEndian(data, raw, e.dtype, path, e.name) });
    }
    return { tensors, metadata };
  } finally {
    fs.closeSync(fd);
  }
}

/** Async loadStateSync. */
export async function loadState(path: string): Promise<{ tensors: Record<string, LoadedTensor>; metadata: Record<string, string> }> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(path, "r");
  } catch (err) {
    fail(`load ${path}`, err instanceof Error ? err.message : String(err), err);
  }
  try {
    const fileLength = (await handle.stat()).size;
    const prefix = await readExact(handle, new Uint8Array(Math.min(8, fileLength)), 0, fileLength, path);
    const headerLength = readHeaderLength(prefix, fileLength, path);
    const { dataStart, entries, metadata } = parseHeader(await readExact(handle, new Uint8Array(headerLength), 8, fileLength, path), fileLength, path);
    const tensors: Record<string, LoadedTensor> = {};
    for (const e of entries) {
      const { data, raw } = allocateTensor(e.dtype, e.end - e.begin);
      await readExact(handle, raw, dataStart + e.begin, fileLength, path);
      setEntry(tensors, e.name, { shape: e.shape, dtype: e.dtype, data: fillFromLittleEndian(data, raw, e.dtype, path, e.name) });
    }
    return { tensors, metadata };
  } finally {
    await handle.close();
  }
}

/**
 * Loads a checkpoint as tapegrad Tensors (leaves, no grad), keyed by name.
 * @example model.loadStateDict(loadSync("model.safetensors"));
 */
export function loadSync(path: string): Record<string, Tensor> {
  return toTensors(loadStateSync(path).tensors);
}

/** Async loadSync. */
export async function load(path: string): Promise<Record<string, Tensor>> {
  return toTensors((await loadState(path)).tensors);
}
