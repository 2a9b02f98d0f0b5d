/** IDX files on disk: read (raw or gzip, detected by content) and written atomically. */
import { readFileSync } from "node:fs";
import { gunzipSync, gzipSync } from "node:zlib";
import { type IdxArray, type IdxData, type IdxDtype, IdxFormatError, encodeIdx, parseIdxWith } from "../data/idx.ts";
import { writeFileAtomic } from "./atomic.ts";

/**
 * Reads an IDX file, raw or gzip-compressed (detected by content, not by name).
 *
 * @example const { shape, data } = readIdx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
 */
export function readIdx(path: string): IdxArray {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new IdxFormatError(path, `cannot read IDX file (${(err as Error).message})`);
  }
  return parseIdxWith(bytes, path, (gz) => gunzipSync(gz));
}

/**
 * Writes an IDX file atomically. Gzip-compressed when `gzip` is true, or by default when the path ends in `.gz`.
 *
 * @example writeIdx("labels-idx1-ubyte.gz", { shape: [3], data: new Uint8Array([0, 1, 2]) });
 */
export function writeIdx(
  path: string,
  array: { shape: readonly number[]; data: IdxData; dtype?: IdxDtype },
  options: { gzip?: boolean } = {},
): void {
  const raw = encodeIdx(array);
  const gzip = options.gzip ?? path.endsWith(".gz");
  // mtime 0 and a fixed level keep the output byte-identical across runs (the sample is committed).
  writeFileAtomic(path, gzip ? gzipSync(raw, { level: 9 }) : raw);
}
