/**
 * Checkpoints in the safetensors format (https://github.com/huggingface/safetensors):
 *
 *   [8 bytes: header length N, little-endian u64]
 *   [N bytes: UTF-8 JSON header, padded with spaces so the data starts 8-byte aligned]
 *   [data: every tensor's bytes, little-endian, row-major, contiguous, no gaps]
 *
 * The header maps each tensor name to { dtype, shape, data_offsets: [begin, end] } (offsets relative to
 * the start of the data) plus an optional "__metadata__" map of strings. tapegrad writes and reads F32, F64
 * and I64; other dtypes are recognised and rejected by name. tapegrad has no integer tensors: an I64 entry
 * (PyTorch's BatchNorm counter num_batches_tracked) is a Float64Array of integers in memory, exact up to
 * 2^53, and a float tensor of integers is written as I64 when it says so (`storageDtype: "int64"`).
 *
 * Endianness: the fast paths copy raw bytes and so assume a little-endian host (every platform Node ships
 * for today); on a big-endian host every value goes through a DataView with explicit little-endian order.
 *
 * This module works on bytes and runs anywhere; reading and writing files (save, load) is in
 * node/checkpoint.ts, the `@tapegrad/nn/node` entry.
 */
import { TapegradError } from "@tapegrad/autograd";

export type CheckpointDtype = "float32" | "float64" | "int64";

/** Anything with a row-major shape, a dtype and its flat data — a Tensor qualifies. */
export interface TensorLike {
  shape: number[];
  dtype: CheckpointDtype;
  data: Float32Array | Float64Array;
  /** Store as this dtype instead of `dtype`: "int64" writes a float tensor of integers as I64 (a Module's
   *  integer buffers, e.g. BatchNorm's num_batches_tracked, carry it in their state dict). */
  storageDtype?: "int64";
}

/** A tensor read back from a checkpoint: plain data, freshly allocated and aligned. An "int64" tensor's
 *  integers are in a Float64Array. */
export interface LoadedTensor {
  shape: number[];
  dtype: CheckpointDtype;
  data: Float32Array | Float64Array;
}

/** Any malformed checkpoint or unsavable state dict. The message names the file (or source) and the problem. */
export class CheckpointError extends TapegradError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message);
    if (options !== undefined && "cause" in options) {
      Object.defineProperty(this, "cause", { value: options.cause, writable: true, configurable: true });
    }
  }
}

/** Headers beyond this size are refused, as the reference implementation does: a guard against garbage. */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = "__metadata__";

const FORMAT_DTYPE = { float32: "F32", float64: "F64", int64: "I64" } as const;
const FROM_FORMAT_DTYPE: Record<string, CheckpointDtype> = { F32: "float32", F64: "float64", I64: "int64" };
const ITEM_SIZE = { float32: 4, float64: 8, int64: 8 } as const;
/** The array type an entry of each dtype lives in (an int64 entry's integers in a Float64Array). */
const ARRAY_TYPE = { float32: Float32Array, float64: Float64Array, int64: Float64Array } as const;
/** Dtypes the format defines that tapegrad has no tensor type for. */
const KNOWN_UNSUPPORTED_DTYPES = new Set([
  "BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "F16", "BF16",
  "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64",
]);

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------------
// Writing

interface PlannedTensor {
  name: string;
  source: TensorLike;
  dtype: CheckpointDtype;
  shape: number[];
  count: number;
}

/** A file laid out by planWrite. @internal (shared with node/checkpoint.ts, not exported by the entries) */
export interface WritePlan {
  /** The 8-byte length prefix followed by the padded header. */
  head: Uint8Array;
  tensors: PlannedTensor[];
  totalBytes: number;
}

/** @internal */
export function fail(where: string, problem: string, cause?: unknown): never {
  throw new CheckpointError(`${where}: ${problem}`, cause === undefined ? undefined : { cause });
}

function formatShape(shape: readonly unknown[]): string {
  return `[${shape.map(String).join(", ")}]`;
}

/**
 * Lays out the file from names, dtypes and shapes only; tensor data is read later, one tensor at a time,
 * so save() can stream it to disk without building the whole file in memory.
 * @internal
 */
export function planWrite(stateDict: Record<string, TensorLike>, metadata: Record<string, string> | undefined, where: string): WritePlan {
  if (stateDict === null || typeof stateDict !== "object") fail(where, "state dict must be an object of tensors");
  // NOTE: the header is built by hand, not with JSON.stringify(object), because JS objects put integer-like
  // keys ("0", "1") first; building the string keeps the sorted order we promise.
  const parts: string[] = [];
  if (metadata !== undefined) {
    const metaParts: string[] = [];
    for (const key of Object.keys(metadata).sort()) {
      const value = metadata[key];
      if (typeof value !== "string") fail(where, `metadata "${key}" must be a string, got ${typeof value}`);
      metaParts.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${metaParts.join(",")}}`);
  }
  const tensors: PlannedTensor[] = [];
  let offset = 0;
  for (const name of Object.keys(stateDict).sort()) {
    if (name === METADATA_KEY) fail(where, `"${METADATA_KEY}" is reserved and cannot name a tensor`);
    const source = stateDict[name];
    if (source === null || typeof source !== "object") fail(where, `tensor "${name}" is not a tensor`);
    const { shape } = source;
    const dtype = source.storageDtype ?? source.dtype;
    if (dtype !== "float32" && dtype !== "float64" && dtype !== "int64") {
      fail(where, `tensor "${name}": unsupported dtype ${JSON.stringify(dtype)} (expected "float32", "float64" or "int64")`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(where, `tensor "${name}": shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    const count = shape.reduce((a, b) => a * b, 1);
    const byteLength = count * ITEM_SIZE[dtype];
    tensors.push({ name, source, dtype, shape: [...shape], count });
    const info = { dtype: FORMAT_DTYPE[dtype], shape, data_offsets: [offset, offset + byteLength] };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(info)}`);
    offset += byteLength;
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const headerLength = Math.ceil(json.length / 8) * 8; // 8 + headerLength is then a multiple of 8
  if (headerLength > MAX_HEADER_BYTES) fail(where, `header of ${headerLength} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const head = new Uint8Array(8 + headerLength).fill(0x20, 8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLength), true);
  head.set(json, 8);
  if (!Number.isSafeInteger(head.length + offset)) fail(where, "checkpoint too large");
  return { head, tensors, totalBytes: head.length + offset };
}

/** A tensor's little-endian bytes; reads `data` exactly once and checks it against the planned dtype and shape. */
function tensorBytes(t: PlannedTensor, where: string): Uint8Array {
  const data: unknown = t.source.data;
  if (t.dtype === "int64") return int64Bytes(t, data, where);
  const expected = ARRAY_TYPE[t.dtype];
  if (!(data instanceof expected)) {
    const got = ArrayBuffer.isView(data) ? data.constructor.name : typeof data;
    fail(where, `tensor "${t.name}": dtype ${t.dtype} needs a ${expected.name}, got ${got}`);
  }
  if (data.length !== t.count) {
    fail(where, `tensor "${t.name}": data has ${data.length} elements but shape ${formatShape(t.shape)} needs ${t.count}`);
  }
  if (LITTLE_ENDIAN_HOST) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  if (data instanceof Float32Array) for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i], true);
  else for (let i = 0; i < data.length; i++) view.setFloat64(i * 8, data[i], true);
  return out;
}

/** An int64 entry's bytes from a float array of integers (each must be a safe integer). */
function int64Bytes(t: PlannedTensor, data: unknown, where: string): Uint8Array {
  if (!(data instanceof Float32Array || data instanceof Float64Array)) {
    fail(where, `tensor "${t.name}": int64 data must be a Float32Array or Float64Array of integers, got ${ArrayBuffer.isView(data) ? data.constructor.name : typeof data}`);
  }
  if (data.length !== t.count) {
    fail(where, `tensor "${t.name}": data has ${data.length} elements but shape ${formatShape(t.shape)} needs ${t.count}`);
  }
  const out = new Uint8Array(data.length * 8);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) {
    if (!Number.isSafeInteger(data[i])) fail(where, `tensor "${t.name}": int64 value ${data[i]} at index ${i} is not an integer within ±2^53`);
    view.setBigInt64(i * 8, BigInt(data[i]), true);
  }
  return out;
}

/** The file's bytes in order: head, then each tensor's data. Lazy, so a bad tensor fails mid-write. @internal */
export function* fileChunks(plan: WritePlan, where: string): Generator<Uint8Array> {
  yield plan.head;
  for (const t of plan.tensors) yield tensorBytes(t, where);
}

/**
 * Encodes a state dict as safetensors bytes. Tensors are stored sorted by name.
 * @example const bytes = serialize({ "fc.weight": w }, { epoch: "3" });
 */
export function serialize(stateDict: Record<string, TensorLike>, metadata?: Record<string, string>): Uint8Array {
  const where = "serialize";
  const plan = planWrite(stateDict, metadata, where);
  const out = new Uint8Array(plan.totalBytes);
  let offset = 0;
  for (const chunk of fileChunks(plan, where)) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Reading

/** @internal */
export interface HeaderEntry {
  name: string;
  dtype: CheckpointDtype;
  shape: number[];
  begin: number;
  end: number;
}

/** @internal */
export interface ParsedHeader {
  /** Bytes before the data: 8 + header length. */
  dataStart: number;
  entries: HeaderEntry[];
  metadata: Record<string, string>;
}

/** Reads and checks the header length prefix; returns N. @internal */
export function readHeaderLength(prefix: Uint8Array, fileLength: number, where: string): number {
  if (fileLength < 8) fail(where, `truncated: ${fileLength} bytes is too short for the 8-byte header length`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(where, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupted file?)`);
  const headerLength = Number(n);
  if (8 + headerLength > fileLength) {
    fail(where, `truncated: header length ${headerLength} runs past the end of the ${fileLength}-byte file`);
  }
  return headerLength;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function isIndex(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/**
 * Validates the JSON header against a data section of `dataLength` bytes: every entry well-formed, each
 * byte range the size its shape says, and the ranges tiling the data exactly (the spec forbids gaps and overlaps).
 * @internal
 */
export function parseHeader(headerBytes: Uint8Array, fileLength: number, where: string): ParsedHeader {
  const dataStart = 8 + headerBytes.length;
  const dataLength = fileLength - dataStart;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch (err) {
    fail(where, "header is not valid UTF-8", err);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    fail(where, `header is not valid JSON: ${err instanceof Error ? err.message : String(err)}`, err);
  }
  if (!isPlainObject(header)) fail(where, "header must be a JSON object");

  const metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const name of Object.keys(header)) {
    const value = header[name];
    if (name === METADATA_KEY) {
      if (!isPlainObject(value)) fail(where, `"${METADATA_KEY}" must be an object of strings`);
      for (const key of Object.keys(value)) {
        const v = value[key];
        if (typeof v !== "string") fail(where, `metadata "${key}" must be a string, got ${JSON.stringify(v)}`);
        Object.defineProperty(metadata, key, { value: v, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    const t = `tensor "${name}"`;
    if (!isPlainObject(value)) fail(where, `${t}: header entry must be an object`);
    const { dtype: formatDtype, shape, data_offsets: offsets } = value;
    if (formatDtype === undefined) fail(where, `${t}: missing "dtype"`);
    if (shape === undefined) fail(where, `${t}: missing "shape"`);
    if (offsets === undefined) fail(where, `${t}: missing "data_offsets"`);
    if (typeof formatDtype !== "string") fail(where, `${t}: "dtype" must be a string, got ${JSON.stringify(formatDtype)}`);
    const dtype = Object.hasOwn(FROM_FORMAT_DTYPE, formatDtype) ? FROM_FORMAT_DTYPE[formatDtype] : undefined;
    if (dtype === undefined) {
      if (KNOWN_UNSUPPORTED_DTYPES.has(formatDtype)) {
        fail(where, `${t}: unsupported dtype ${formatDtype} (tapegrad loads F32, F64 and I64 only)`);
      }
      fail(where, `${t}: unknown dtype ${JSON.stringify(formatDtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every(isIndex)) {
      fail(where, `${t}: "shape" must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
      fail(where, `${t}: "data_offsets" must be two non-negative integers, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(where, `${t}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataLength) {
      fail(where, `${t}: data_offsets [${begin}, ${end}] run past the end of the ${dataLength}-byte data section (truncated file?)`);
    }
    const count = shape.reduce((a: number, b: number) => a * b, 1);
    const expectedBytes = count * ITEM_SIZE[dtype];
    if (end - begin !== expectedBytes) {
      fail(where, `${t}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${formatDtype} shape ${formatShape(shape)} needs ${expectedBytes}`);
    }
    entries.push({ name, dtype, shape: [...shape], begin, end });
  }

  // NOTE: sorting by (begin, end) puts empty tensors before the non-empty one that starts at the same offset,
  // so a walk that demands begin === previous end accepts them and still catches every gap and overlap.
  const byOffset = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: HeaderEntry | undefined;
  for (const e of byOffset) {
    if (e.begin < cursor && previous !== undefined) {
      fail(where, `tensors "${previous.name}" [${previous.begin}, ${previous.end}] and "${e.name}" [${e.begin}, ${e.end}] overlap`);
    }
    if (e.begin > cursor) {
      fail(where, `gap in the data section: bytes [${cursor}, ${e.begin}) before tensor "${e.name}" belong to no tensor`);
    }
    cursor = e.end;
    previous = e;
  }
  if (cursor !== dataLength) {
    fail(where, `file length mismatch: tensors cover ${cursor} data bytes but the file holds ${dataLength} after the header`);
  }
  return { dataStart, entries, metadata };
}

/**
 * A fresh, aligned typed array for `byteLength` bytes of `dtype`, and the byte buffer to fill it through:
 * on a little-endian host the array's own bytes (no copy), otherwise a scratch buffer that fillFromLittleEndian
 * decodes. Copying is what makes the result aligned even when the source bytes sit at an odd offset.
 * @internal
 */
export function allocateTensor(dtype: CheckpointDtype, byteLength: number): { data: Float32Array | Float64Array; raw: Uint8Array } {
  const data = new ARRAY_TYPE[dtype](byteLength / ITEM_SIZE[dtype]);
  return { data, raw: LITTLE_ENDIAN_HOST && dtype !== "int64" ? new Uint8Array(data.buffer) : new Uint8Array(byteLength) };
}

/** Decodes `raw` into `data` where allocateTensor gave a separate scratch buffer. An int64 value beyond
 *  ±2^53 has no exact float64 and is an error. @internal */
export function fillFromLittleEndian(data: Float32Array | Float64Array, raw: Uint8Array, dtype: CheckpointDtype, where = "<bytes>", name = ""): Float32Array | Float64Array {
  if (dtype === "int64") {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let i = 0; i < data.length; i++) {
      const v = view.getBigInt64(i * 8, true);
      if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(-Number.MAX_SAFE_INTEGER)) {
        fail(where, `tensor "${name}": int64 value ${v} at index ${i} is beyond ±2^53, which tapegrad cannot hold exactly`);
      }
      data[i] = Number(v);
    }
    return data;
  }
  if (LITTLE_ENDIAN_HOST) return data;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (data instanceof Float32Array) for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(i * 4, true);
  else for (let i = 0; i < data.length; i++) data[i] = view.getFloat64(i * 8, true);
  return data;
}

/** @internal */
export function setEntry<T>(record: Record<string, T>, name: string, value: T): void {
  // defineProperty, not assignment: a tensor named "__proto__" must stay a plain key
  Object.defineProperty(record, name, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Decodes safetensors bytes, validating the whole layout. `source` (a file name) prefixes every error.
 * @example const { tensors, metadata } = deserialize(fs.readFileSync("model.safetensors"), "model.safetensors");
 */
export function deserialize(
  bytes: Uint8Array,
  source = "<bytes>",
): { tensors: Record<string, LoadedTensor>; metadata: Record<string, string> } {
  const headerLength = readHeaderLength(bytes, bytes.length, source);
  const { dataStart, entries, metadata } = parseHeader(bytes.subarray(8, 8 + headerLength), bytes.length, source);
  const tensors: Record<string, LoadedTensor> = {};
  for (const e of entries) {
    const { data, raw } = allocateTensor(e.dtype, e.end - e.begin);
    raw.set(bytes.subarray(dataStart + e.begin, dataStart + e.end));
    setEntry(tensors, e.name, { shape: e.shape, dtype: e.dtype, data: fillFromLittleEndian(data, raw, e.dtype, source, e.name) });
  }
  return { tensors, metadata };
}

