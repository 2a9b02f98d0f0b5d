import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Tensor } from "@tapegrad/autograd";
import { CheckpointError, deserialize, serialize, type TensorLike } from "../packages/nn/src/safetensors.ts";
import { load, loadState, loadStateSync, loadSync, save, saveSync } from "../packages/nn/src/node/checkpoint.ts";

const encoder = new TextEncoder();

function f32(shape: number[], values: number[]): TensorLike {
  return { shape, dtype: "float32", data: Float32Array.from(values) };
}

function f64(shape: number[], values: number[]): TensorLike {
  return { shape, dtype: "float64", data: Float64Array.from(values) };
}

function concat(...parts: ArrayLike<number>[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

function u64le(n: number | bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  return out;
}

function f32le(...values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  values.forEach((v, i) => new DataView(out.buffer).setFloat32(i * 4, v, true));
  return out;
}

function f64le(...values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  values.forEach((v, i) => new DataView(out.buffer).setFloat64(i * 8, v, true));
  return out;
}

/** A file to the spec from a raw header string (no padding unless the string has it) and data bytes. */
function fileFrom(header: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = encoder.encode(header);
  return concat(u64le(json.length), json, data);
}

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "tapegrad-checkpoint-"));
});
afterEach(() => {
  vi.restoreAllMocks();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("serialize", () => {
  it("serialize: lays out prefix, sorted padded header and data byte by byte", () => {
    const bytes = serialize(
      { b: f32([2], [1, -2]), a: f64([], [0.5]) },
      { framework: "tapegrad" },
    );
    const header =
      '{"__metadata__":{"framework":"tapegrad"},' +
      '"a":{"dtype":"F64","shape":[],"data_offsets":[0,8]},' +
      '"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}';
    expect(header.length).toBe(147);
    // 147 bytes of JSON + 5 spaces = 152, so the data starts at 8 + 152 = 160, a multiple of 8
    const expected = [
      152, 0, 0, 0, 0, 0, 0, 0,
      ...Array.from(header, (c) => c.charCodeAt(0)),
      0x20, 0x20, 0x20, 0x20, 0x20,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe0, 0x3f, // 0.5 as f64 little-endian
      0x00, 0x00, 0x80, 0x3f, // 1 as f32
      0x00, 0x00, 0x00, 0xc0, // -2 as f32
    ];
    expect(Array.from(bytes)).toEqual(expected);
  });

  it("serialize: an empty state dict is an 8-byte padded '{}' header", () => {
    expect(Array.from(serialize({}))).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20]);
  });

  it("serialize: data always starts 8-byte aligned", () => {
    for (let n = 1; n < 20; n++) {
      const bytes = serialize({ ["x".repeat(n)]: f32([1], [n]) });
      const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      expect((8 + headerLength) % 8).toBe(0);
      expect(bytes.length).toBe(8 + headerLength + 4);
    }
  });

  it("serialize: orders integer-like names as strings, not as JS object keys", () => {
    const bytes = serialize({ a: f32([], [1]), "10": f32([], [2]), "2": f32([], [3]) });
    const text = new TextDecoder().decode(bytes.subarray(8));
    expect(text.indexOf('"10"')).toBeLessThan(text.indexOf('"2"'));
    expect(text.indexOf('"2"')).toBeLessThan(text.indexOf('"a"'));
    expect(deserialize(bytes).tensors["2"].data).toEqual(Float32Array.from([3]));
  });

  it("serialize: writes the bytes of a subarray view, not its whole buffer", () => {
    const backing = Float32Array.from([9, 9, 1, 2, 9]);
    const bytes = serialize({ v: { shape: [2], dtype: "float32", data: backing.subarray(2, 4) } });
    expect(Array.from(bytes.subarray(bytes.length - 8))).toEqual(Array.from(f32le(1, 2)));
  });

  it("serialize: rejects data whose length disagrees with the shape", () => {
    expect(() => serialize({ w: f32([2, 3], [1, 2, 3, 4, 5]) })).toThrow(
      'serialize: tensor "w": data has 5 elements but shape [2, 3] needs 6',
    );
  });

  it("serialize: rejects data of the wrong array type for the dtype", () => {
    const bad = { shape: [1], dtype: "float32", data: Float64Array.from([1]) } as TensorLike;
    expect(() => serialize({ w: bad })).toThrow('serialize: tensor "w": dtype float32 needs a Float32Array, got Float64Array');
  });

  it("serialize: rejects bad shapes, bad dtypes, the reserved name and non-string metadata", () => {
    expect(() => serialize({ w: f32([-1], []) })).toThrow('tensor "w": shape must be an array of non-negative integers, got [-1]');
    expect(() => serialize({ w: f32([1.5], [1]) })).toThrow("shape must be an array of non-negative integers");
    const int = { shape: [1], dtype: "int32", data: new Float32Array(1) } as unknown as TensorLike;
    expect(() => serialize({ w: int })).toThrow('tensor "w": unsupported dtype "int32" (expected "float32", "float64" or "int64")');
    expect(() => serialize({ __metadata__: f32([], [1]) })).toThrow('"__metadata__" is reserved');
    const meta = { epoch: 3 } as unknown as Record<string, string>;
    expect(() => serialize({}, meta)).toThrow('serialize: metadata "epoch" must be a string, got number');
  });
});

describe("deserialize", () => {
  it("deserialize: reads a hand-made spec file: metadata last, names out of order, F64, unpadded header", () => {
    const header =
      '{"z.bias":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},' +
      '"a.weight":{"shape":[2,2],"data_offsets":[16,32],"dtype":"F32"},' +
      '"__metadata__":{"format":"pt","note":"hand made"}}';
    const bytes = fileFrom(header, concat(f64le(0.1, -3), f32le(1, 2, 3, 4)));
    const { tensors, metadata } = deserialize(bytes, "hand.safetensors");
    expect(metadata).toEqual({ format: "pt", note: "hand made" });
    expect(Object.keys(tensors).sort()).toEqual(["a.weight", "z.bias"]);
    expect(tensors["z.bias"]).toEqual({ shape: [2], dtype: "float64", data: Float64Array.from([0.1, -3]) });
    expect(tensors["a.weight"]).toEqual({ shape: [2, 2], dtype: "float32", data: Float32Array.from([1, 2, 3, 4]) });
  });

  it("deserialize: accepts a header padded with trailing spaces and no metadata", () => {
    const bytes = fileFrom('{"x":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}     ', f32le(7));
    const { tensors, metadata } = deserialize(bytes);
    expect(metadata).toEqual({});
    expect(tensors.x).toEqual({ shape: [], dtype: "float32", data: Float32Array.from([7]) });
  });

  it("deserialize: copies data into fresh aligned arrays even from an odd byte offset", () => {
    const file = serialize({ w: f64([3], [1, 2, 3]), v: f32([1], [5]) });
    const shifted = new Uint8Array(file.length + 1);
    shifted.set(file, 1);
    const { tensors } = deserialize(shifted.subarray(1));
    expect(tensors.w.data).toBeInstanceOf(Float64Array);
    expect(tensors.w.data.byteOffset).toBe(0);
    expect(tensors.w.data.buffer).not.toBe(shifted.buffer);
    expect(Array.from(tensors.w.data)).toEqual([1, 2, 3]);
  });

  it("deserialize: keeps a tensor named __proto__ as an ordinary key", () => {
    // an object literal's __proto__ would set the prototype, so define the key explicitly
    const stateDict: Record<string, TensorLike> = {};
    Object.defineProperty(stateDict, "__proto__", { value: f32([], [1]), enumerable: true });
    const { tensors } = deserialize(serialize(stateDict));
    expect(Object.keys(tensors)).toEqual(["__proto__"]);
    expect(Object.getPrototypeOf(tensors)).toBe(Object.prototype);
  });
});

describe("round trip", () => {
  const cases: Record<string, TensorLike> = {
    "float32 matrix": f32([2, 3], [1, -2, 3.5, 1e-30, 3e38, -0]),
    "float64 vector": f64([4], [Math.PI, -Math.E, 1e-300, Number.MAX_VALUE]),
    "0-d float32": f32([], [42]),
    "0-d float64": f64([], [-1.25]),
    "empty float32": f32([0], []),
    "empty float64 with zero inside the shape": f64([2, 0, 3], []),
    "special values": f64([4], [NaN, Infinity, -Infinity, -0]),
  };

  it("round trip: serialize then deserialize is bit-exact for every dtype and shape", () => {
    const { tensors, metadata } = deserialize(serialize(cases, { step: "7" }));
    expect(metadata).toEqual({ step: "7" });
    expect(Object.keys(tensors).sort()).toEqual(Object.keys(cases).sort());
    for (const [name, t] of Object.entries(cases)) {
      const back = tensors[name];
      expect(back.shape, name).toEqual(t.shape);
      expect(back.dtype, name).toBe(t.dtype);
      expect(back.data.constructor, name).toBe(t.data.constructor);
      // compare the bytes so NaN and -0 count
      expect(new Uint8Array(back.data.buffer, back.data.byteOffset, back.data.byteLength), name).toEqual(
        new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      );
    }
  });

  it("round trip: saveSync/loadStateSync and save/loadState through a file", async () => {
    const file = path.join(dir, "model.safetensors");
    saveSync(file, cases, { epoch: "1" });
    expect(fs.readFileSync(file)).toEqual(Buffer.from(serialize(cases, { epoch: "1" })));
    const syncBack = loadStateSync(file);
    await save(file, cases, { epoch: "2" });
    const asyncBack = await loadState(file);
    expect(syncBack.metadata).toEqual({ epoch: "1" });
    expect(asyncBack.metadata).toEqual({ epoch: "2" });
    for (const back of [syncBack.tensors, asyncBack.tensors]) {
      expect(back["float32 matrix"].data).toEqual(cases["float32 matrix"].data);
      expect(back["0-d float64"]).toEqual({ shape: [], dtype: "float64", data: Float64Array.from([-1.25]) });
      expect(back["empty float64 with zero inside the shape"].shape).toEqual([2, 0, 3]);
    }
  });

  it("round trip: load and loadSync return tapegrad Tensors", async () => {
    const file = path.join(dir, "model.safetensors");
    saveSync(file, { w: f32([2, 2], [1, 2, 3, 4]), b: f64([], [0.5]) });
    for (const tensors of [loadSync(file), await load(file)]) {
      expect(tensors.w).toBeInstanceOf(Tensor);
      expect(tensors.w.requiresGrad).toBe(false);
      expect(tensors.w.shape).toEqual([2, 2]);
      expect(tensors.w.dtype).toBe("float32");
      expect(Array.from(tensors.w.data)).toEqual([1, 2, 3, 4]);
      expect(tensors.b.shape).toEqual([]);
      expect(tensors.b.dtype).toBe("float64");
      expect(Array.from(tensors.b.data)).toEqual([0.5]);
    }
  });

  it("round trip: a loaded state dict can be saved again unchanged", () => {
    const file = path.join(dir, "a.safetensors");
    saveSync(file, cases);
    const again = path.join(dir, "b.safetensors");
    saveSync(again, loadSync(file));
    expect(fs.readFileSync(again)).toEqual(fs.readFileSync(file));
  });
});

describe("corrupted files", () => {
  const good = serialize({ a: f32([2], [1, 2]), b: f64([1], [3]) }, { k: "v" });
  const goodHeaderLength = Number(new DataView(good.buffer).getBigUint64(0, true));
  const entry = (dtype: string, shape: unknown, offsets: unknown) =>
    JSON.stringify({ dtype, shape, data_offsets: offsets });

  /** Checks both the in-memory decoder and the streaming file reader give the same message. */
  function expectCorrupt(bytes: Uint8Array, message: string | RegExp): void {
    expect(() => deserialize(bytes, "bad.safetensors")).toThrow(CheckpointError);
    expect(() => deserialize(bytes, "bad.safetensors")).toThrow(message);
    const file = path.join(dir, "bad.safetensors");
    fs.writeFileSync(file, bytes);
    expect(() => loadStateSync(file)).toThrow(message);
    expect(() => loadSync(file)).toThrow(file);
  }

  it("corrupt: every truncation point is an error naming the file", () => {
    const cuts = [0, 1, 7, 8, 9, 8 + goodHeaderLength - 1, 8 + goodHeaderLength, 8 + goodHeaderLength + 3, good.length - 1];
    for (const cut of cuts) {
      const bytes = good.subarray(0, cut);
      expect(() => deserialize(bytes, "cut.safetensors"), `cut at ${cut}`).toThrow(/^cut\.safetensors: /);
    }
    expectCorrupt(good.subarray(0, 5), "bad.safetensors: truncated: 5 bytes is too short for the 8-byte header length");
    expectCorrupt(
      good.subarray(0, 20),
      `bad.safetensors: truncated: header length ${goodHeaderLength} runs past the end of the 20-byte file`,
    );
    expectCorrupt(good.subarray(0, good.length - 1), /tensor "b": data_offsets \[8, 16\] run past the end of the 15-byte data section \(truncated file\?\)/);
  });

  it("corrupt: async load reports truncation too", async () => {
    const file = path.join(dir, "cut.safetensors");
    fs.writeFileSync(file, good.subarray(0, 12));
    await expect(load(file)).rejects.toThrow(`${file}: truncated: header length ${goodHeaderLength} runs past the end`);
  });

  it("corrupt: a header length beyond the 100 MB limit", () => {
    const bytes = concat(u64le(2n ** 40n), good.subarray(8));
    expectCorrupt(bytes, `bad.safetensors: header length ${2 ** 40} exceeds the 100000000-byte limit (corrupted file?)`);
    expectCorrupt(concat(u64le(0xffffffffffffffffn), good.subarray(8)), "exceeds the 100000000-byte limit");
  });

  it("corrupt: a header that is not UTF-8, not JSON, or not an object", () => {
    expectCorrupt(concat(u64le(2), [0xff, 0xfe]), "bad.safetensors: header is not valid UTF-8");
    expectCorrupt(fileFrom('{"a":{"dtype":"F32",'), /bad\.safetensors: header is not valid JSON: /);
    expectCorrupt(fileFrom("[1,2]"), "bad.safetensors: header must be a JSON object");
    expectCorrupt(fileFrom("null"), "header must be a JSON object");
  });

  it("corrupt: entries missing a field or with malformed fields", () => {
    expectCorrupt(fileFrom('{"w":{"shape":[1],"data_offsets":[0,4]}}', f32le(1)), 'bad.safetensors: tensor "w": missing "dtype"');
    expectCorrupt(fileFrom('{"w":{"dtype":"F32","data_offsets":[0,4]}}', f32le(1)), 'tensor "w": missing "shape"');
    expectCorrupt(fileFrom('{"w":{"dtype":"F32","shape":[1]}}', f32le(1)), 'tensor "w": missing "data_offsets"');
    expectCorrupt(fileFrom('{"w":[1]}'), 'tensor "w": header entry must be an object');
    expectCorrupt(fileFrom(`{"w":${entry("F32", [-1], [0, 4])}}`, f32le(1)), 'tensor "w": "shape" must be an array of non-negative integers, got [-1]');
    expectCorrupt(fileFrom(`{"w":${entry("F32", [0.5], [0, 4])}}`, f32le(1)), '"shape" must be an array of non-negative integers, got [0.5]');
    expectCorrupt(fileFrom(`{"w":${entry("F32", 4, [0, 4])}}`, f32le(1)), '"shape" must be an array of non-negative integers, got 4');
    expectCorrupt(fileFrom(`{"w":${entry("F32", [1], [0])}}`, f32le(1)), 'tensor "w": "data_offsets" must be two non-negative integers, got [0]');
    expectCorrupt(fileFrom(`{"w":${entry("F32", [1], [-4, 0])}}`, f32le(1)), '"data_offsets" must be two non-negative integers, got [-4,0]');
    expectCorrupt(fileFrom(`{"w":${entry("F32", [0], [4, 0])}}`, f32le(1)), 'tensor "w": data_offsets [4, 0] end before they begin');
    expectCorrupt(fileFrom('{"__metadata__":{"epoch":3}}'), 'bad.safetensors: metadata "epoch" must be a string, got 3');
    expectCorrupt(fileFrom('{"__metadata__":"x"}'), '"__metadata__" must be an object of strings');
  });

  it("corrupt: an unsupported dtype is named with its tensor", () => {
    for (const dtype of ["F16", "BF16", "I32", "U8", "BOOL"]) {
      expectCorrupt(
        fileFrom(`{"emb":${entry(dtype, [1], [0, 8])}}`, new Uint8Array(8)),
        `bad.safetensors: tensor "emb": unsupported dtype ${dtype} (tapegrad loads F32, F64 and I64 only)`,
      );
    }
    expectCorrupt(fileFrom(`{"emb":${entry("F33", [1], [0, 4])}}`, f32le(1)), 'tensor "emb": unknown dtype "F33"');
  });

  it("corrupt: a byte range whose length disagrees with dtype and shape", () => {
    expectCorrupt(
      fileFrom(`{"w":${entry("F32", [2, 2], [0, 12])}}`, f32le(1, 2, 3)),
      'bad.safetensors: tensor "w": data_offsets [0, 12] hold 12 bytes but F32 shape [2, 2] needs 16',
    );
    expectCorrupt(
      fileFrom(`{"w":${entry("F64", [2], [0, 8])}}`, f32le(1, 2)),
      'tensor "w": data_offsets [0, 8] hold 8 bytes but F64 shape [2] needs 16',
    );
  });

  it("corrupt: offsets out of range, overlapping, with gaps, or leaving trailing bytes", () => {
    expectCorrupt(
      fileFrom(`{"w":${entry("F32", [2], [4, 12])}}`, f32le(1, 2)),
      'tensor "w": data_offsets [4, 12] run past the end of the 8-byte data section',
    );
    expectCorrupt(
      fileFrom(`{"a":${entry("F32", [2], [0, 8])},"b":${entry("F32", [2], [4, 12])}}`, f32le(1, 2, 3)),
      'bad.safetensors: tensors "a" [0, 8] and "b" [4, 12] overlap',
    );
    expectCorrupt(
      fileFrom(`{"a":${entry("F32", [1], [0, 4])},"b":${entry("F32", [1], [0, 4])}}`, f32le(1)),
      'tensors "a" [0, 4] and "b" [0, 4] overlap',
    );
    expectCorrupt(
      fileFrom(`{"a":${entry("F32", [1], [0, 4])},"b":${entry("F32", [1], [8, 12])}}`, f32le(1, 2, 3)),
      'bad.safetensors: gap in the data section: bytes [4, 8) before tensor "b" belong to no tensor',
    );
    expectCorrupt(
      fileFrom(`{"b":${entry("F32", [1], [4, 8])}}`, f32le(1, 2)),
      'gap in the data section: bytes [0, 4) before tensor "b" belong to no tensor',
    );
    expectCorrupt(
      fileFrom(`{"a":${entry("F32", [1], [0, 4])}}`, f32le(1, 2)),
      "bad.safetensors: file length mismatch: tensors cover 4 data bytes but the file holds 8 after the header",
    );
    expectCorrupt(concat(good, [0]), "file length mismatch: tensors cover 16 data bytes but the file holds 17 after the header");
  });

  it("corrupt: empty tensors may share an offset with their neighbours", () => {
    const bytes = fileFrom(
      `{"a":${entry("F32", [1], [0, 4])},"e":${entry("F64", [0], [4, 4])},"z":${entry("F32", [0, 3], [0, 0])}}`,
      f32le(1),
    );
    const { tensors } = deserialize(bytes);
    expect(tensors.e.data.length).toBe(0);
    expect(tensors.z.shape).toEqual([0, 3]);
  });

  it("corrupt: a missing file is a CheckpointError naming it", async () => {
    const file = path.join(dir, "missing.safetensors");
    expect(() => loadSync(file)).toThrow(CheckpointError);
    expect(() => loadSync(file)).toThrow(`load ${file}: ENOENT`);
    await expect(load(file)).rejects.toThrow(`load ${file}: ENOENT`);
  });
});

describe("atomic save", () => {
  const original = { w: f32([2], [1, 2]) };

  function leftovers(): string[] {
    return fs.readdirSync(dir).filter((name) => name.includes(".tmp-"));
  }

  /** A state dict whose second tensor's data getter throws after the first tensor has reached the temp file. */
  function explodingStateDict(seen: { tempFiles: string[] }): Record<string, TensorLike> {
    return {
      a: f32([1000], new Array(1000).fill(3)),
      b: {
        shape: [1],
        dtype: "float32",
        get data(): Float32Array {
          seen.tempFiles = leftovers();
          throw new Error("device lost");
        },
      },
    };
  }

  it("atomic save: replaces an existing file and leaves no temp file", async () => {
    const file = path.join(dir, "m.safetensors");
    saveSync(file, original);
    saveSync(file, { w: f32([1], [5]) });
    expect(loadStateSync(file).tensors.w.data).toEqual(Float32Array.from([5]));
    await save(file, { w: f32([1], [6]) });
    expect(loadStateSync(file).tensors.w.data).toEqual(Float32Array.from([6]));
    expect(fs.readdirSync(dir)).toEqual(["m.safetensors"]);
  });

  it("atomic save: a tensor failing mid-write keeps the old file and removes the temp file (sync)", () => {
    const file = path.join(dir, "m.safetensors");
    saveSync(file, original);
    const before = fs.readFileSync(file);
    const seen = { tempFiles: [] as string[] };
    expect(() => saveSync(file, explodingStateDict(seen))).toThrow(`save ${file}: device lost`);
    expect(seen.tempFiles).toHaveLength(1); // the write really was under way
    expect(seen.tempFiles[0]).toMatch(new RegExp(`^m\\.safetensors\\.tmp-${process.pid}-[0-9a-f]+$`));
    expect(fs.readFileSync(file)).toEqual(before);
    expect(leftovers()).toEqual([]);
  });

  it("atomic save: a tensor failing mid-write keeps the old file and removes the temp file (async)", async () => {
    const file = path.join(dir, "m.safetensors");
    await save(file, original);
    const before = fs.readFileSync(file);
    const seen = { tempFiles: [] as string[] };
    await expect(save(file, explodingStateDict(seen))).rejects.toThrow(`save ${file}: device lost`);
    expect(seen.tempFiles).toHaveLength(1);
    expect(fs.readFileSync(file)).toEqual(before);
    expect(leftovers()).toEqual([]);
  });

  it("atomic save: a data/shape mismatch found mid-write also cleans up", () => {
    const file = path.join(dir, "m.safetensors");
    saveSync(file, original);
    expect(() => saveSync(file, { a: f32([1], [1]), b: f32([3], [1, 2]) })).toThrow(
      `save ${file}: tensor "b": data has 2 elements but shape [3] needs 3`,
    );
    expect(loadStateSync(file).tensors.w.data).toEqual(Float32Array.from([1, 2]));
    expect(leftovers()).toEqual([]);
  });

  it("atomic save: fsync or rename failures keep the old file and remove the temp file", async () => {
    const file = path.join(dir, "m.safetensors");
    saveSync(file, original);
    const before = fs.readFileSync(file);

    vi.spyOn(fs, "fsyncSync").mockImplementationOnce(() => {
      throw Object.assign(new Error("EIO: i/o error, fsync"), { code: "EIO" });
    });
    expect(() => saveSync(file, { w: f32([1], [9]) })).toThrow(`save ${file}: EIO: i/o error, fsync`);
    expect(fs.readFileSync(file)).toEqual(before);
    expect(leftovers()).toEqual([]);

    vi.spyOn(fs, "renameSync").mockImplementationOnce(() => {
      throw Object.assign(new Error("EXDEV: cross-device link"), { code: "EXDEV" });
    });
    let caught: unknown;
    try {
      saveSync(file, { w: f32([1], [9]) });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CheckpointError);
    expect((caught as CheckpointError).message).toBe(`save ${file}: EXDEV: cross-device link`);
    expect(((caught as CheckpointError).cause as { code: string }).code).toBe("EXDEV");
    expect(fs.readFileSync(file)).toEqual(before);
    expect(leftovers()).toEqual([]);

    vi.spyOn(fs.promises, "rename").mockRejectedValueOnce(new Error("ENOSPC: no space left on device"));
    await expect(save(file, { w: f32([1], [9]) })).rejects.toThrow(`save ${file}: ENOSPC: no space left on device`);
    expect(fs.readFileSync(file)).toEqual(before);
    expect(leftovers()).toEqual([]);
  });

  it("atomic save: invalid state dicts fail before touching the disk", () => {
    const file = path.join(dir, "m.safetensors");
    const open = vi.spyOn(fs, "openSync");
    expect(() => saveSync(file, { w: f32([-2], []) })).toThrow(`save ${file}: tensor "w": shape must be`);
    expect(open).not.toHaveBeenCalled();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it("atomic save: a missing directory is a CheckpointError naming the target", async () => {
    const file = path.join(dir, "no", "such", "m.safetensors");
    expect(() => saveSync(file, original)).toThrow(`save ${file}: ENOENT`);
    await expect(save(file, original)).rejects.toThrow(`save ${file}: ENOENT`);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
