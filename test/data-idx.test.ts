import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { IdxFormatError, encodeIdx, isGzip, parseIdx, type IdxData, type IdxDtype } from "../packages/nn/src/data/idx.ts";
import { writeFileAtomic } from "../packages/nn/src/node/atomic.ts";
import { readIdx, writeIdx } from "../packages/nn/src/node/idx.ts";

const dir = mkdtempSync(join(tmpdir(), "tapegrad-idx-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const samples: Array<[IdxDtype, IdxData]> = [
  ["uint8", new Uint8Array([0, 1, 127, 128, 254, 255])],
  ["int8", new Int8Array([-128, -1, 0, 1, 64, 127])],
  ["int16", new Int16Array([-32768, -2, 0, 3, 1000, 32767])],
  ["int32", new Int32Array([-2147483648, -5, 0, 7, 123456789, 2147483647])],
  ["float32", new Float32Array([-1.5, 0, 0.25, 3.140000104904175, 1e30, -1e-30])],
  ["float64", new Float64Array([-1.5, 0, 0.1, Math.PI, 1e300, -Number.MIN_VALUE])],
];

describe("idx: encoding", () => {
  it("writes the MNIST header: 00 00 08 ndims then big-endian dims", () => {
    const bytes = encodeIdx({ shape: [2, 1, 3], data: new Uint8Array([1, 2, 3, 4, 5, 6]) });
    expect(Array.from(bytes.subarray(0, 16))).toEqual([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3]);
    expect(Array.from(bytes.subarray(16))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("stores multi-byte elements big-endian", () => {
    const bytes = encodeIdx({ shape: [1], data: new Int32Array([0x01020304]) });
    expect(Array.from(bytes)).toEqual([0, 0, 0x0c, 1, 0, 0, 0, 1, 1, 2, 3, 4]);
  });

  it("rejects data that does not fit the shape", () => {
    expect(() => encodeIdx({ shape: [2, 2], data: new Uint8Array(3) })).toThrow(/holds 4 elements but data has 3/);
  });
});

describe("idx: round trip", () => {
  for (const [dtype, data] of samples) {
    for (const gzip of [false, true]) {
      it(`${dtype} ${gzip ? "gzip" : "raw"} file reads back the same values and shape`, () => {
        const path = join(dir, `${dtype}-${gzip ? "gz" : "raw"}.idx${gzip ? ".gz" : ""}`);
        writeIdx(path, { shape: [2, 3], data });
        expect(isGzip(readFileSync(path))).toBe(gzip);
        const back = readIdx(path);
        expect(back.dtype).toBe(dtype);
        expect(back.shape).toEqual([2, 3]);
        expect(back.data.constructor).toBe(data.constructor);
        expect(Array.from(back.data)).toEqual(Array.from(data));
      });
    }
  }

  it("gzip is detected by content, not by the file name", () => {
    const path = join(dir, "compressed-without-suffix");
    writeIdx(path, { shape: [3], data: new Uint8Array([9, 8, 7]) }, { gzip: true });
    expect(Array.from(readIdx(path).data)).toEqual([9, 8, 7]);
  });

  it("writeIdx leaves no temporary file behind", () => {
    const sub = mkdtempSync(join(dir, "atomic-"));
    writeIdx(join(sub, "a.idx"), { shape: [1], data: new Uint8Array([1]) });
    expect(readdirSync(sub)).toEqual(["a.idx"]);
  });

  it("a failed write leaves neither the target nor a temporary file", () => {
    const sub = mkdtempSync(join(dir, "atomic-fail-"));
    expect(() => writeIdx(join(sub, "a.idx"), { shape: [2], data: new Uint8Array([1]) })).toThrow();
    expect(readdirSync(sub)).toEqual([]);
    // The rename itself fails when the target is a directory: the temporary file must be removed.
    mkdirSync(join(sub, "taken"));
    writeFileSync(join(sub, "taken", "x"), "x");
    expect(() => writeFileAtomic(join(sub, "taken"), new Uint8Array([1, 2, 3]))).toThrow();
    expect(readdirSync(sub)).toEqual(["taken"]);
  });
});

describe("idx: malformed files are errors naming the file", () => {
  const good = encodeIdx({ shape: [4, 2, 2], data: new Uint8Array(16).fill(3) });

  it("truncated raw file reports expected and actual byte counts", () => {
    const path = join(dir, "truncated-idx3-ubyte");
    writeFileSync(path, good.subarray(0, good.length - 5));
    expect(() => readIdx(path)).toThrow(IdxFormatError);
    expect(() => readIdx(path)).toThrow(`${path}: truncated IDX file: expected 32 bytes`);
    expect(() => readIdx(path)).toThrow(/got 27/);
  });

  it("truncated gzip stream is reported as such", () => {
    const path = join(dir, "truncated.gz");
    const gz = gzipSync(good);
    writeFileSync(path, gz.subarray(0, gz.length - 10));
    expect(() => readIdx(path)).toThrow(`${path}: gzip stream is corrupt or truncated`);
  });

  it("gzip of a truncated IDX file reports the byte counts", () => {
    const path = join(dir, "short-inside.gz");
    writeFileSync(path, gzipSync(good.subarray(0, 20)));
    expect(() => readIdx(path)).toThrow(/short-inside\.gz: truncated IDX file: expected 32 bytes .* got 20/);
  });

  it("trailing bytes are rejected", () => {
    const path = join(dir, "long-idx");
    writeFileSync(path, Buffer.concat([good, Buffer.from([1, 2])]));
    expect(() => readIdx(path)).toThrow(/long-idx: IDX file has trailing bytes: expected 32 bytes .* got 34/);
  });

  it("a foreign file (wrong magic) is rejected", () => {
    const path = join(dir, "foreign.zip");
    writeFileSync(path, Buffer.from("PK\x03\x04 not an idx file at all"));
    expect(() => readIdx(path)).toThrow(/foreign\.zip: not an IDX file: magic bytes are 50 4b 03 04/);
  });

  it("an unknown dtype code is rejected", () => {
    const bytes = Uint8Array.from(good);
    bytes[2] = 0x0a;
    expect(() => parseIdx(bytes, "odd-dtype")).toThrow(/odd-dtype: unknown IDX dtype code 0x0a/);
  });

  it("dimensions that disagree with the byte count are rejected", () => {
    const bytes = Uint8Array.from(good);
    bytes[7] = 5; // claims 5 images of 2×2 while holding 4
    expect(() => parseIdx(bytes, "wrong-dims")).toThrow(/wrong-dims: truncated IDX file: expected 36 bytes .*5×2×2.* got 32/);
  });

  it("a header cut inside the dimensions is rejected", () => {
    expect(() => parseIdx(good.subarray(0, 10), "cut-header")).toThrow(/cut-header: truncated IDX header: expected 16 bytes/);
  });

  it("an empty file is rejected", () => {
    expect(() => parseIdx(new Uint8Array(0), "empty")).toThrow(/empty: truncated IDX file/);
  });

  it("a missing file names the path", () => {
    const path = join(dir, "does-not-exist");
    expect(() => readIdx(path)).toThrow(`${path}: cannot read IDX file`);
  });
});
