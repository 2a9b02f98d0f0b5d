/**
 * The WebAssembly gemm's helper thread in a real browser: Debian's Chromium (headless, driven by
 * playwright-core) loads a page bundled by esbuild from the sources, served from 127.0.0.1 with and without
 * the cross-origin isolation headers (COOP same-origin + COEP require-corp), and a page bundled by Vite,
 * which must pick up the helper's `new Worker(new URL(..., import.meta.url))` by itself. Each page runs
 * initWasmThreads(), a 512×512 float32 product on two threads and again on one, and reports the thread
 * count, the reason and the bits (hashed), and the same product on pinned operands (isolated pages only).
 * Chromium's WebAssembly has relaxed SIMD, so its kernels fuse multiply-adds by default: the bits must equal
 * the in-order fused loop (test/helpers/gemm-sequential.ts); with wasmGemmFma(false) they must equal this
 * Node process's own (unfused) product.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize, sep } from "node:path";
import { build as esbuild } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gemmWasm, wasmGemmAvailable, wasmGemmThreads } from "../packages/autograd/src/kernels/gemm.ts";
import { fusedF32, gemmSequential } from "./helpers/gemm-sequential.ts";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const repo = join(import.meta.dirname, "..");
const kernelsEntry = join(repo, "packages/autograd/src/kernels/index.ts");
const N = 512;

/** The page: the same operands as `operands()` below, written out so that the bundlers see plain code. */
const pageSource = `
import { gemmBackend, gemmWasm, initWasmThreads, isPinned, pinArray, wasmGemmFma, wasmGemmThreads, wasmHelperStats } from ${JSON.stringify(kernelsEntry)};

function filled(length: number, seed: number): Float32Array {
  const out = new Float32Array(length);
  let s = seed;
  for (let i = 0; i < length; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

function fnv1a(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
  return h.toString(16);
}

async function main(): Promise<unknown> {
  const query = new URLSearchParams(location.search);
  const worker = query.get("worker");
  if (query.get("fma") === "0") wasmGemmFma(false);
  const info = await initWasmThreads(worker ? { workerUrl: new URL(worker, location.href) } : {});
  const n = ${N};
  const a = filled(n * n, 1), b = filled(n * n, 2);
  const threads = wasmGemmThreads();
  const two = new Float32Array(n * n);
  gemmWasm(false, false, n, n, n, a, 0, n, b, 0, n, two, 0, n, 0);
  const helperParts = wasmHelperStats().parts;
  wasmGemmThreads(1);
  const one = new Float32Array(n * n);
  gemmWasm(false, false, n, n, n, a, 0, n, b, 0, n, one, 0, n, 0);
  const bytesOne = new Uint8Array(one.buffer), bytesTwo = new Uint8Array(two.buffer);
  // pinned operands, read in place by both threads (only where the memory is shared)
  wasmGemmThreads(threads);
  const pa = pinArray("float32", n * n), pb = pinArray("float32", n * n);
  let pinned: unknown = null;
  if (pa && pb) {
    pa.set(a);
    pb.set(b);
    const c = new Float32Array(n * n);
    gemmWasm(false, false, n, n, n, pa, 0, n, pb, 0, n, c, 0, n, 0);
    const bytes = new Uint8Array(c.buffer);
    pinned = { isPinned: isPinned(pa) && isPinned(pb.subarray(5)), ownBuffers: pa.buffer !== pb.buffer, sameBits: bytesOne.every((v, i) => v === bytes[i]) };
  }
  return {
    pinned,
    isolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true,
    backend: gemmBackend(), threads, info, helperParts, fma: wasmGemmFma(),
    sameBits: bytesOne.every((v, i) => v === bytesTwo[i]),
    hash: fnv1a(bytesOne),
  };
}

main().then(
  (result) => { (globalThis as { __result?: unknown }).__result = result; },
  (error: Error) => { (globalThis as { __result?: unknown }).__result = { error: String(error.stack ?? error) }; },
);
`;

/** The page's operands and hash, in Node. */
function filled(length: number, seed: number): Float32Array {
  const out = new Float32Array(length);
  let s = seed;
  for (let i = 0; i < length; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}
function fnv1a(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
  return h.toString(16);
}

const ISOLATION = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" };
const TYPES: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".map": "application/json" };

/** A static server for `root` on 127.0.0.1, with the isolation headers on every response or without. */
async function serve(root: string, isolated: boolean): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname));
    const file = join(root, path === sep ? "index.html" : path);
    if (!file.startsWith(root) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream", ...(isolated ? ISOLATION : {}) });
    res.end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("browser test: the server has no port");
  return { server, url: `http://127.0.0.1:${address.port}/` };
}

interface PageResult {
  error?: string;
  pinned: { isPinned: boolean; ownBuffers: boolean; sameBits: boolean } | null;
  isolated: boolean;
  backend: string;
  threads: number;
  info: { threads: number; helper: string; reason: string; workerKind?: string };
  helperParts: number;
  sameBits: boolean;
  hash: string;
  fma: boolean;
}

const missing = !existsSync(CHROMIUM) ? `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`
  : !wasmGemmAvailable() ? "no WebAssembly SIMD in this Node" : undefined;
if (missing) console.warn(`browser-wasm-threads: skipped: ${missing}`);

describe.skipIf(missing !== undefined)("WebAssembly threads in Chromium", () => {
  let work = "";
  const servers: Server[] = [];
  let context: import("playwright-core").BrowserContext;
  /** The product's hash unfused (this Node's kernels) and fused (the in-order fused loop). */
  let expectedHash = "";
  let fusedHash = "";

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "tapegrad-browser-"));
    const esbuildDir = join(work, "esbuild");
    writeFileSync(join(work, "page.ts"), pageSource);
    writeFileSync(join(work, "index.html"), `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>wasm threads</title><script type="module" src="./page.ts"></script>`);
    // esbuild does not bundle `new Worker(new URL(...))`: the page names the bundled worker (workerUrl)
    await esbuild({
      entryPoints: { page: join(work, "page.ts"), "wasm-helper.worker": join(repo, "packages/autograd/src/kernels/wasm-helper.worker.ts") },
      outdir: esbuildDir, bundle: true, format: "esm", platform: "browser", target: "es2022", logLevel: "silent",
    });
    writeFileSync(join(esbuildDir, "index.html"), `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>wasm threads</title><script type="module" src="./page.js"></script>`);
    // Vite bundles the helper's worker from the `new Worker(new URL(..., import.meta.url))` in wasm-threads.ts
    const { build: viteBuild } = await import("vite");
    await viteBuild({
      root: work, base: "./", logLevel: "silent", configFile: false,
      worker: { format: "es" },
      build: { outDir: join(work, "vite"), emptyOutDir: true, target: "es2022", minify: false },
    });
    for (const [dir, isolated] of [[esbuildDir, true], [esbuildDir, false], [join(work, "vite"), true]] as const) {
      servers.push((await serve(dir, isolated)).server);
    }
    const { chromium } = await import("playwright-core");
    context = await chromium.launchPersistentContext(join(work, "profile"), {
      executablePath: CHROMIUM, headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"],
    });
    const previous = wasmGemmThreads(1);
    const c = new Float32Array(N * N);
    gemmWasm(false, false, N, N, N, filled(N * N, 1), 0, N, filled(N * N, 2), 0, N, c, 0, N, 0);
    wasmGemmThreads(previous);
    expectedHash = fnv1a(new Uint8Array(c.buffer));
    const fused = Float32Array.from(gemmSequential({ transA: false, transB: false, m: N, n: N, k: N, beta: 0, a: filled(N * N, 1), b: filled(N * N, 2), c }, fusedF32));
    fusedHash = fnv1a(new Uint8Array(fused.buffer));
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    for (const server of servers) server.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** Opens the page of servers[index], returns its result and the console's errors (page and workers). */
  async function visit(index: number, query = ""): Promise<{ result: PageResult; errors: string[] }> {
    const address = servers[index].address();
    if (address === null || typeof address === "string") throw new Error("browser test: no server address");
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("console", (message) => { if (message.type() === "error") errors.push(message.text()); });
    page.on("pageerror", (error) => errors.push(String(error)));
    page.on("worker", (worker) => worker.on("console", (message) => { if (message.type() === "error") errors.push(`worker: ${message.text()}`); }));
    await page.goto(`http://127.0.0.1:${address.port}/${query}`);
    await page.waitForFunction(() => (globalThis as { __result?: unknown }).__result !== undefined, undefined, { timeout: 20_000 });
    const result = await page.evaluate(() => (globalThis as { __result?: unknown }).__result) as PageResult;
    await page.close();
    return { result, errors };
  }

  it("browser: a cross-origin-isolated page runs the gemm on two threads, fused, with the same bits as one thread and as the fused loop", async () => {
    const { result, errors } = await visit(0, "?worker=./wasm-helper.worker.js");
    expect(result.error).toBeUndefined();
    expect(result).toMatchObject({ isolated: true, backend: "wasm", threads: 2, fma: true, sameBits: true, hash: fusedHash });
    expect(result.pinned).toEqual({ isPinned: true, ownBuffers: true, sameBits: true });
    expect(result.info).toEqual({ threads: 2, helper: "ready", workerKind: "web-worker",
      reason: "2 threads: the caller and a helper Web Worker over shared WebAssembly memory" });
    expect(result.helperParts).toBeGreaterThan(0);
    expect(errors).toEqual([]);
  }, 30_000);

  it("browser: wasmGemmFma(false) before the first product gives Node's unfused bits, on two threads and on one", async () => {
    const { result, errors } = await visit(0, "?worker=./wasm-helper.worker.js&fma=0");
    expect(result.error).toBeUndefined();
    expect(result).toMatchObject({ isolated: true, threads: 2, fma: false, sameBits: true, hash: expectedHash });
    expect(result.pinned).toEqual({ isPinned: true, ownBuffers: true, sameBits: true });
    expect(result.helperParts).toBeGreaterThan(0);
    expect(errors).toEqual([]);
  }, 30_000);

  it("browser: without the isolation headers the gemm stays on one thread, says why, and gives the same bits", async () => {
    const { result, errors } = await visit(1, "?worker=./wasm-helper.worker.js");
    expect(result.error).toBeUndefined();
    expect(result).toMatchObject({ isolated: false, backend: "wasm", threads: 1, helperParts: 0, fma: true, sameBits: true, hash: fusedHash });
    // no shared memory, no pinning
    expect(result.pinned).toBeNull();
    expect(result.info.threads).toBe(1);
    expect(result.info.helper).toBe("unavailable");
    expect(result.info.reason).toMatch(/^1 thread: the page is not cross-origin isolated .*Cross-Origin-Opener-Policy: same-origin.*Cross-Origin-Embedder-Policy: require-corp/);
    expect(errors).toEqual([]);
  }, 30_000);

  it("browser: a Vite build bundles the helper worker from the sources' new Worker(new URL(...)) by itself", async () => {
    const { result, errors } = await visit(2);
    expect(result.error).toBeUndefined();
    expect(result).toMatchObject({ isolated: true, threads: 2, sameBits: true, hash: fusedHash });
    expect(result.info.helper).toBe("ready");
    expect(result.helperParts).toBeGreaterThan(0);
    expect(errors).toEqual([]);
  }, 30_000);
});
