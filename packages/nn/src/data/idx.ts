/**
 * The IDX file format (the one MNIST and Fashion-MNIST ship in), decoded from and encoded to bytes; reading
 * and writing files is in node/idx.ts.
 *
 * Layout: two zero bytes, a dtype byte, a byte with the number of dimensions, then one big-endian
 * uint32 per dimension, then the elements in row-major order, big-endian. Files may be gzip-compressed.
 */
import { TapegradError, ValueError } from "@tapegrad/autograd";
import { gunzipSync } from "fflate";

/** Element types an IDX file can hold, by the name used in this API. */
export type IdxDtype = "uint8" | "int8" | "int16" | "int32" | "float32" | "float64";

/** The typed array that holds each IDX dtype once decoded. */
export interface IdxArrayMap {
  uint8: Uint8Array;
  int8: Int8Array;
  int16: Int16Array;
  int32: Int32Array;
  float32: Float32Array;
  float64: Float64Array;
}

export type IdxData = IdxArrayMap[IdxDtype];

/** A decoded IDX file: its dtype, its dimensions and its elements in row-major order. */
export interface IdxArray {
  dtype: IdxDtype;
  shape: number[];
  data: IdxData;
}

interface DtypeInfo {
  code: number;
  bytes: number;
}

const DTYPES: Record<IdxDtype, DtypeInfo> = {
  uint8: { code: 0x08, bytes: 1 },
  int8: { code: 0x09, bytes: 1 },
  int16: { code: 0x0b, bytes: 2 },
  int32: { code: 0x0c, bytes: 4 },
  float32: { code: 0x0d, bytes: 4 },
  float64: { code: 0x0e, bytes: 8 },
};

const DTYPE_BY_CODE = new Map<number, IdxDtype>(
  (Object.keys(DTYPES) as IdxDtype[]).map((name) => [DTYPES[name].code, name]),
);

/** Thrown for any malformed IDX input; the message starts with the file's name. */
export class IdxFormatError extends TapegradError {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** True when `bytes` starts with the gzip magic number 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Decodes IDX bytes (raw or gzip-compressed). `name` is used in error messages.
 *
 * @example parseIdx(new Uint8Array(await (await fetch(url)).arrayBuffer()), "t10k-labels").shape // [10000]
 */
export function parseIdx(input: Uint8Array, name = "<idx>"): IdxArray {
  return parseIdxWith(input, name, gunzipSync);
}

/**
 * parseIdx with a given gunzip (node/idx.ts passes zlib's, which is faster than the portable one).
 * @internal
 */
export function parseIdxWith(input: Uint8Array, name: string, gunzip: (bytes: Uint8Array) => Uint8Array): IdxArray {
  let bytes = input;
  if (isGzip(bytes)) {
    try {
      bytes = gunzip(bytes);
    } catch (err) {
      throw new IdxFormatError(name, `gzip stream is corrupt or truncated (${(err as Error).message})`);
    }
  }
  if (bytes.length < 4) {
    throw new IdxFormatError(name, `truncated IDX file: expected at least a 4-byte header, got ${bytes.length} bytes`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new IdxFormatError(
      name,
      `not an IDX file: magic bytes are ${hex(bytes.subarray(0, 4))}, expected 00 00 <dtype> <ndims>`,
    );
  }
  const dtype = DTYPE_BY_CODE.get(bytes[2]);
  if (dtype === undefined) {
    throw new IdxFormatError(
      name,
      `unknown IDX dtype code 0x${bytes[2].toString(16).padStart(2, "0")} (known: 08 09 0b 0c 0d 0e)`,
    );
  }
  const ndims = bytes[3];
  if (ndims === 0) throw new IdxFormatError(name, "IDX header declares 0 dimensions");
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    throw new IdxFormatError(
      name,
      `truncated IDX header: expected ${headerBytes} bytes for ${ndims} dimensions, got ${bytes.length}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  let count = 1;
  for (let i = 0; i < ndims; i++) {
    const dim = view.getUint32(4 + 4 * i, false);
    shape.push(dim);
    count *= dim;
  }
  const { bytes: width } = DTYPES[dtype];
  const expected = headerBytes + count * width;
  if (bytes.length !== expected) {
    const what = bytes.length < expected ? "truncated IDX file" : "IDX file has trailing bytes";
    throw new IdxFormatError(
      name,
      `${what}: expected ${expected} bytes (${headerBytes}-byte header + ${shape.join("×")} ${dtype}), got ${bytes.length}`,
    );
  }
  return { dtype, shape, data: decode(view, headerBytes, count, dtype) };
}

function decode(view: DataView, offset: number, count: number, dtype: IdxDtype): IdxData {
  switch (dtype) {
    case "uint8":
      // A copy, so the result does not pin a larger decompression buffer.
      return new Uint8Array(view.buffer.slice(view.byteOffset + offset, view.byteOffset + offset + count));
    case "int8":
      return new Int8Array(view.buffer.slice(view.byteOffset + offset, view.byteOffset + offset + count));
    case "int16": {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(offset + 2 * i, false);
      return out;
    }
    case "int32": {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(offset + 4 * i, false);
      return out;
    }
    case "float32": {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(offset + 4 * i, false);
      return out;
    }
    case "float64": {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(offset + 8 * i, false);
      return out;
    }
  }
}

function dtypeOf(data: IdxData): IdxDtype {
  if (data instanceof Uint8Array) return "uint8";
  if (data instanceof Int8Array) return "int8";
  if (data instanceof Int16Array) return "int16";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof Float32Array) return "float32";
  return "float64";
}

/**
 * Encodes an array as raw (uncompressed) IDX bytes. The dtype is taken from `data`'s type unless given.
 *
 * @example encodeIdx({ shape: [2], data: new Uint8Array([3, 7]) }) // 00 00 08 01 00 00 00 02 03 07
 */
export function encodeIdx(array: { shape: readonly number[]; data: IdxData; dtype?: IdxDtype }): Uint8Array {
  const dtype = array.dtype ?? dtypeOf(array.data);
  const { code, bytes: width } = DTYPES[dtype];
  const { shape, data } = array;
  if (shape.length === 0 || shape.length > 255) {
    throw new ValueError(`encodeIdx: IDX needs 1 to 255 dimensions, got shape [${shape.join(", ")}]`);
  }
  let count = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) {
      throw new ValueError(`encodeIdx: invalid dimension ${d} in shape [${shape.join(", ")}]`);
    }
    count *= d;
  }
  if (count !== data.length) {
    throw new ValueError(`encodeIdx: shape [${shape.join(", ")}] holds ${count} elements but data has ${data.length}`);
  }
  const headerBytes = 4 + 4 * shape.length;
  const out = new Uint8Array(headerBytes + count * width);
  const view = new DataView(out.buffer);
  out[2] = code;
  out[3] = shape.length;
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  for (let i = 0; i < count; i++) {
    const at = headerBytes + i * width;
    const v = data[i];
    switch (dtype) {
      case "uint8":
        view.setUint8(at, v);
        break;
      case "int8":
        view.setInt8(at, v);
        break;
      case "int16":
        view.setInt16(at, v, false);
        break;
      case "int32":
        view.setInt32(at, v, false);
        break;
      case "float32":
        view.setFloat32(at, v, false);
        break;
      case "float64":
        view.setFloat64(at, v, false);
        break;
    }
  }
  return out;
}
