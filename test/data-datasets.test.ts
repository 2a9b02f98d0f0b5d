import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  DatasetNotFoundError, defaultCacheDir, fashionMnist, mnist, resetDataWarnings, type DatasetOptions,
} from "../packages/nn/src/node/datasets.ts";
import { type Checksum, type DownloadProgress, downloadFile } from "../packages/nn/src/node/download.ts";
import { readIdx, writeIdx } from "../packages/nn/src/node/idx.ts";
import { fashionMnistSample } from "../packages/examples/src/lib/data.ts";

const tmp = mkdtempSync(join(tmpdir(), "tapegrad-datasets-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeEach(() => resetDataWarnings());

let dirCount = 0;
function freshDir(name: string): string {
  const dir = join(tmp, `${name}-${dirCount++}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Writes a fake split of `n` 28×28 images whose pixels encode their index; labels cycle 0..9. */
function writeSplit(dir: string, n: number, opts: { split?: "train" | "test"; gzip?: boolean } = {}): void {
  const prefix = (opts.split ?? "train") === "train" ? "train" : "t10k";
  const gzip = opts.gzip ?? true;
  const images = new Uint8Array(n * 784);
  for (let i = 0; i < n; i++) images.fill((i * 17) % 256, i * 784, (i + 1) * 784);
  const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
  mkdirSync(dir, { recursive: true });
  writeIdx(join(dir, `${prefix}-images-idx3-ubyte${gzip ? ".gz" : ""}`), { shape: [n, 28, 28], data: images });
  writeIdx(join(dir, `${prefix}-labels-idx1-ubyte${gzip ? ".gz" : ""}`), { shape: [n], data: labels });
}

/** Options that see nothing of this machine: no env, an empty cache, no system dirs, no download. */
function isolated(extra: Partial<DatasetOptions> = {}): DatasetOptions {
  return {
    split: "train",
    env: {},
    cacheDir: freshDir("cache"),
    systemDirs: [],
    download: false,
    onProgress: () => {},
    ...extra,
  };
}

describe("datasets: where the files are found", () => {
  const root = freshDir("root");
  const envDir = freshDir("env");
  const xdg = freshDir("xdg");
  const debian = freshDir("debian");
  writeSplit(root, 3);
  writeSplit(envDir, 4);
  writeSplit(join(xdg, "tapegrad", "fashion-mnist"), 5);
  writeSplit(debian, 6);
  const all = (): DatasetOptions => ({
    split: "train",
    root,
    env: { TAPEGRAD_DATA: envDir, XDG_CACHE_HOME: xdg },
    systemDirs: [debian],
    download: false,
  });

  it("explicit root comes first", async () => {
    const ds = await fashionMnist(all());
    expect(ds.n).toBe(3);
    expect(ds.source).toBe(`root:${root}`);
    expect(ds.isSample).toBe(false);
  });

  it("then TAPEGRAD_DATA", async () => {
    const ds = await fashionMnist({ ...all(), root: undefined });
    expect(ds.n).toBe(4);
    expect(ds.source).toBe(`env:${envDir}`);
  });

  it("then the user cache ($XDG_CACHE_HOME/tapegrad/<dataset>)", async () => {
    const ds = await fashionMnist({ ...all(), root: undefined, env: { XDG_CACHE_HOME: xdg } });
    expect(ds.n).toBe(5);
    expect(ds.source).toBe(`cache:${join(xdg, "tapegrad", "fashion-mnist")}`);
  });

  it("then the system (Debian) directory", async () => {
    const ds = await fashionMnist({ ...all(), root: undefined, env: { XDG_CACHE_HOME: freshDir("empty-xdg") } });
    expect(ds.n).toBe(6);
    expect(ds.source).toBe(`debian:${debian}`);
  });

  it("a root missing the requested split falls through to the next place", async () => {
    const trainOnly = freshDir("train-only");
    writeSplit(trainOnly, 2, { split: "train" });
    writeSplit(debian, 7, { split: "test" });
    const ds = await fashionMnist({ ...all(), split: "test", root: trainOnly, env: {} });
    expect(ds.split).toBe("test");
    expect(ds.source).toBe(`debian:${debian}`);
    expect(ds.n).toBe(7);
  });

  it("the cache defaults to ~/.cache/tapegrad without XDG_CACHE_HOME", () => {
    expect(defaultCacheDir({ XDG_CACHE_HOME: "/x/y" })).toBe("/x/y/tapegrad");
    expect(defaultCacheDir({})).toMatch(/\.cache\/tapegrad$/);
  });

  it("accepts a <dir>/fashion-mnist subfolder and uncompressed file names", async () => {
    const parent = freshDir("parent");
    writeSplit(join(parent, "fashion-mnist"), 8, { gzip: false });
    const ds = await fashionMnist(isolated({ root: parent }));
    expect(ds.n).toBe(8);
  });
});

describe("datasets: decoding", () => {
  it("scales pixels to [0, 1], keeps labels as integers and names the classes", async () => {
    const dir = freshDir("decode");
    writeSplit(dir, 12);
    const ds = await fashionMnist(isolated({ root: dir }));
    expect(ds).toMatchObject({ name: "fashion-mnist", split: "train", n: 12, rows: 28, cols: 28 });
    expect(ds.images).toBeInstanceOf(Float32Array);
    expect(ds.images.length).toBe(12 * 784);
    expect(ds.images[0]).toBe(0);
    expect(ds.images[784 * 1]).toBeCloseTo(17 / 255, 7);
    expect(ds.images[784 * 11 + 5]).toBeCloseTo(((11 * 17) % 256) / 255, 7);
    expect(ds.labels).toBeInstanceOf(Int32Array);
    expect(Array.from(ds.labels)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    expect(ds.classes).toEqual([
      "T-shirt/top",
      "Trouser",
      "Pullover",
      "Dress",
      "Coat",
      "Sandal",
      "Shirt",
      "Sneaker",
      "Bag",
      "Ankle boot",
    ]);
    const digits = await mnist(isolated({ root: dir }));
    expect(digits.classes).toEqual(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
  });

  it("a corrupt file where the data was found is an error naming it, not a silent fallback", async () => {
    const dir = freshDir("corrupt");
    writeSplit(dir, 4);
    const images = join(dir, "train-images-idx3-ubyte.gz");
    const bytes = readFileSync(images);
    writeFileSync(images, bytes.subarray(0, bytes.length - 30));
    await expect(fashionMnist(isolated({ root: dir }))).rejects.toThrow(images);
  });

  it("image and label counts must agree", async () => {
    const dir = freshDir("mismatch");
    writeSplit(dir, 4);
    writeIdx(join(dir, "train-labels-idx1-ubyte.gz"), { shape: [3], data: new Uint8Array(3) });
    await expect(fashionMnist(isolated({ root: dir }))).rejects.toThrow(/holds 3 labels but .* holds 4 images/);
  });

  it("labels outside the classes are rejected", async () => {
    const dir = freshDir("bad-label");
    writeSplit(dir, 2);
    writeIdx(join(dir, "train-labels-idx1-ubyte.gz"), { shape: [2], data: new Uint8Array([1, 10]) });
    await expect(fashionMnist(isolated({ root: dir }))).rejects.toThrow(/label 10 at index 1 is outside 0..9/);
  });

  it("an image file of the wrong rank is rejected", async () => {
    const dir = freshDir("bad-rank");
    writeSplit(dir, 2);
    writeIdx(join(dir, "train-images-idx3-ubyte.gz"), { shape: [2, 784], data: new Uint8Array(2 * 784) });
    await expect(fashionMnist(isolated({ root: dir }))).rejects.toThrow(/expected a uint8 image file of shape \[n, rows, cols\]/);
  });
});

describe("datasets: the sample fallback and the error when nothing is found", () => {
  it("falls back to the given sample (the examples' class-balanced one) with one warning", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      const train = await fashionMnist(isolated({ sampleDir: fashionMnistSample }));
      const test = await fashionMnist(isolated({ split: "test", sampleDir: fashionMnistSample }));
      expect(train).toMatchObject({ n: 6000, rows: 28, cols: 28, source: "sample", isSample: true });
      expect(test).toMatchObject({ n: 1000, source: "sample", isSample: true });
      const counts = new Array(10).fill(0);
      for (const label of train.labels) counts[label]++;
      expect(counts).toEqual(new Array(10).fill(600));
      let min = Infinity;
      let max = -Infinity;
      for (const v of test.images) {
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
      expect(min).toBe(0);
      expect(max).toBe(1);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0][0])).toMatch(`using the sample in ${fashionMnistSample} (6000 train images)`);
      expect(String(warn.mock.calls[0][0])).toMatch(/apt-get install dataset-fashion-mnist/);
    } finally {
      warn.mockRestore();
    }
  });

  it("with allowSample: false the error says exactly how to get the data", async () => {
    const promise = fashionMnist(isolated({ sampleDir: fashionMnistSample, allowSample: false }));
    await expect(promise).rejects.toThrow(/Fashion-MNIST train split not found/);
    await expect(promise).rejects.toThrow(/apt-get install dataset-fashion-mnist/);
    await expect(promise).rejects.toThrow(/TAPEGRAD_DATA=/);
    await expect(promise).rejects.toThrow(/fashion-mnist\.s3-website\.eu-central-1\.amazonaws\.com/);
    await expect(promise).rejects.toThrow(/train-images-idx3-ubyte\.gz and train-labels-idx1-ubyte\.gz/);
  });

  it("without a sampleDir, nothing found is an error", async () => {
    await expect(mnist(isolated())).rejects.toThrow(/MNIST train split not found\./);
    await expect(fashionMnist(isolated())).rejects.toThrow(DatasetNotFoundError);
  });

  it("rejects an unknown split", async () => {
    await expect(fashionMnist(isolated({ split: "val" as "train" }))).rejects.toThrow(/split must be "train" or "test"/);
  });
});

const DEBIAN = "/usr/share/datasets/fashion-mnist";
describe.skipIf(!existsSync(join(DEBIAN, "t10k-images-idx3-ubyte.gz")))("datasets: Debian's dataset-fashion-mnist", () => {
  it("loads the full test split from the default system directory", async () => {
    const ds = await fashionMnist({ split: "test", env: {}, cacheDir: freshDir("cache"), download: false });
    expect(ds).toMatchObject({ n: 10000, rows: 28, cols: 28, source: `debian:${DEBIAN}`, isSample: false });
    const counts = new Array(10).fill(0);
    for (const label of ds.labels) counts[label]++;
    expect(counts).toEqual(new Array(10).fill(1000));
  });

  it("the examples' test sample is the first 100 images per class in file order", async () => {
    const full = readIdx(join(DEBIAN, "t10k-images-idx3-ubyte.gz"));
    const labels = readIdx(join(DEBIAN, "t10k-labels-idx1-ubyte.gz"));
    const sample = await fashionMnist(isolated({ split: "test", sampleDir: fashionMnistSample }));
    const taken = new Array(10).fill(0);
    let j = 0;
    for (let i = 0; i < labels.shape[0] && j < sample.n; i++) {
      const label = labels.data[i];
      if (taken[label] === 100) continue;
      taken[label]++;
      expect(sample.labels[j]).toBe(label);
      expect(Math.round(sample.images[j * 784 + 400] * 255)).toBe(full.data[i * 784 + 400]);
      j++;
    }
    expect(j).toBe(1000);
  });
});

describe("datasets: download from a mirror", () => {
  let server: Server;
  let base: string;
  const served = new Map<string, Buffer>();
  const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");
  const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

  beforeAll(async () => {
    const src = freshDir("mirror-src");
    writeSplit(src, 9);
    for (const name of readdirSync(src)) served.set(name, readFileSync(join(src, name)));
    server = createServer((req, res) => {
      const [, mode, name] = (req.url ?? "").split("/");
      const body = mode === "ok" || mode === "drop" || mode === "stall" ? served.get(name ?? "") : undefined;
      if (body === undefined) {
        res.writeHead(404).end("not found");
        return;
      }
      if (mode === "stall") {
        res.writeHead(200, { "content-length": String(body.length) });
        res.write(body.subarray(0, 10));
        return; // never finishes; the client's idle timeout must give up
      }
      if (mode === "drop") {
        // Promise the whole file, send a few bytes, then hang up.
        res.writeHead(200, { "content-length": String(body.length) });
        res.write(body.subarray(0, 64), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      res.writeHead(200, { "content-length": String(body.length) }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const goodChecksums = (): Record<string, Checksum> =>
    Object.fromEntries([...served].map(([name, body]) => [name, { md5: md5(body), sha256: sha256(body) }]));
  const leftovers = (cacheDir: string) => {
    const dir = join(cacheDir, "fashion-mnist");
    return existsSync(dir) ? readdirSync(dir) : [];
  };

  it("downloads into the cache, checks the checksums, and uses the cache next time", async () => {
    const cacheDir = freshDir("dl-cache");
    const options = isolated({ cacheDir, download: true, baseUrl: `${base}/ok/`, checksums: goodChecksums() });
    const ds = await fashionMnist(options);
    expect(ds.n).toBe(9);
    expect(ds.source).toBe(`download:${base}/ok/`);
    expect(leftovers(cacheDir).sort()).toEqual(["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]);
    const again = await fashionMnist({ ...options, baseUrl: `${base}/missing/` });
    expect(again.source).toBe(`cache:${join(cacheDir, "fashion-mnist")}`);
  });

  it("TAPEGRAD_DATA_URL overrides the official mirrors", async () => {
    const cacheDir = freshDir("dl-env");
    const ds = await fashionMnist(
      isolated({ cacheDir, download: true, env: { TAPEGRAD_DATA_URL: `${base}/ok` }, checksums: goodChecksums() }),
    );
    expect(ds.source).toBe(`download:${base}/ok/`);
  });

  it("a checksum mismatch leaves no file behind", async () => {
    const cacheDir = freshDir("dl-bad-sum");
    // The built-in checksums are Fashion-MNIST's real ones, which the fixture files cannot match.
    const promise = fashionMnist(isolated({ cacheDir, download: true, baseUrl: `${base}/ok/`, allowSample: false }));
    await expect(promise).rejects.toThrow(/md5 checksum mismatch: expected 8d4fb7e6c68d591d4c3dfef9ec88bf0d/);
    expect(leftovers(cacheDir)).toEqual([]);
  });

  it("a sha256 mismatch is caught too", async () => {
    const cacheDir = freshDir("dl-bad-sha");
    const checksums = goodChecksums();
    checksums["train-labels-idx1-ubyte.gz"] = { sha256: "0".repeat(64) };
    const promise = fashionMnist(isolated({ cacheDir, download: true, baseUrl: `${base}/ok/`, checksums, allowSample: false }));
    await expect(promise).rejects.toThrow(/sha256 checksum mismatch/);
    expect(leftovers(cacheDir)).toEqual(["train-images-idx3-ubyte.gz"]);
  });

  it("a connection dropped mid-way leaves no partial file", async () => {
    const cacheDir = freshDir("dl-drop");
    const promise = fashionMnist(
      isolated({ cacheDir, download: true, baseUrl: `${base}/drop/`, checksums: goodChecksums(), allowSample: false }),
    );
    await expect(promise).rejects.toThrow(/download of .*drop\/train-images-idx3-ubyte\.gz failed: connection lost after \d+ bytes/);
    expect(leftovers(cacheDir)).toEqual([]);
  });

  it("downloadFile gives up on a stalled transfer and leaves nothing behind", async () => {
    const dir = freshDir("dl-stall");
    const dest = join(dir, "sub", "labels.gz");
    await expect(
      downloadFile(`${base}/stall/train-labels-idx1-ubyte.gz`, dest, { idleTimeoutMs: 200 }),
    ).rejects.toThrow(/no data for 200 ms/);
    expect(readdirSync(join(dir, "sub"))).toEqual([]);
  });

  it("downloadFile without checksums writes the exact bytes", async () => {
    const dest = join(freshDir("dl-plain"), "x.gz");
    const events: DownloadProgress[] = [];
    await downloadFile(`${base}/ok/train-labels-idx1-ubyte.gz`, dest, { onProgress: (p) => events.push(p) });
    const body = served.get("train-labels-idx1-ubyte.gz") as Buffer;
    expect(readFileSync(dest).equals(body)).toBe(true);
    // onProgress: once when the server answers, then after each chunk, counting up to the whole body
    const url = `${base}/ok/train-labels-idx1-ubyte.gz`;
    expect(events[0]).toEqual({ url, file: "x.gz", received: 0, total: body.length });
    expect(events.at(-1)).toEqual({ url, file: "x.gz", received: body.length, total: body.length });
    expect(events.map((e) => e.received)).toEqual([...events.map((e) => e.received)].sort((x, y) => x - y));
  });

  it("an HTTP error falls back to the sample with a warning naming the failure", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      const cacheDir = freshDir("dl-404");
      const ds = await fashionMnist(isolated({ cacheDir, download: true, baseUrl: `${base}/missing/`, sampleDir: fashionMnistSample }));
      expect(ds.isSample).toBe(true);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0][0])).toMatch(/HTTP 404/);
      expect(leftovers(cacheDir)).toEqual([]);
    } finally {
      warn.mockRestore();
    }
  });

  it("an unreachable mirror is an error that says how to get the data", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const promise = fashionMnist(
      isolated({ download: true, baseUrl: `http://127.0.0.1:${port}/`, allowSample: false }),
    );
    await expect(promise).rejects.toThrow(/download failed: .*ECONNREFUSED/i);
    await expect(promise).rejects.toThrow(/apt-get install dataset-fashion-mnist/);
  });
});
