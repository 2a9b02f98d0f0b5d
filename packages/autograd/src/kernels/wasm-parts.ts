/**
 * The work of one WebAssembly gemm product, shared by the calling thread and its helper worker.
 *
 * A product is a job of `chunks` chunks: column ranges of C (or row ranges), each a multiple of whole tiles.
 * Each thread that takes part claims chunks one at a time from the control array (Atomics) and runs the
 * block kernels into the padded C, one depth block at a time. The kernels read A where it is (stored m×k by
 * rows, or stored k×m with a strip's MR values of a depth step side by side) and B stored k×n where it is;
 * only Bᵀ (stored n×k) is packed into NR-wide strips: a column chunk's part one depth block at a time, or,
 * for row chunks, all of it once per thread and job. Whoever computes a chunk, every element of C is summed
 * over the same depth blocks in the same order, so the result is the same bits on one thread or two and for
 * any split between them.
 *
 * The caller claims chunks from the front, the helper from the back: in a training loop each thread then
 * computes about the same rows or columns every step, so the weights it reads and the gradient rows it
 * writes stay in its core's cache (and a pinned SGD step, an axpy job, updates the same halves).
 *
 * NOTE: the functions here use nothing but their arguments and each other (no imports, no module
 * constants, no closures but their own): the Node helper runs their source text
 * (Function.prototype.toString), the browser's module worker imports them.
 */

/** Slots of the Int32 control array (its own SharedArrayBuffer) that the caller and the helper share. The
 *  slots one thread polls while the other writes (SEQ; CLAIM; DONE) each have a cache line of their own, so
 *  a store to one does not take the line another thread is spinning on. */
export const SLOTS = {
  /** Bumped by the caller for every posted job (the helper polls it). */
  SEQ: 0,
  /** (job tag << 12) | chunks not yet claimed; claimed by compare-and-swap. */
  CLAIM: 16,
  /** Chunks of the current job finished, by either thread (the caller polls it). */
  DONE: 32,
  /** 1 once the helper instantiated the module. */
  READY: 48,
  /** 1 after the helper threw. */
  FAILED: 49,
  /** 1 while the helper sleeps in Atomics.wait for a job (the caller only wakes it then). */
  ASLEEP: 50,
  /** 1 while the caller sleeps waiting for the helper's last chunk (DONE). */
  CALLER_WAIT: 51,
  /** Chunks the helper computed (statistics). */
  HELPER_CHUNKS: 64,
  /** Jobs in which the helper computed at least one chunk (statistics). */
  HELPER_JOBS: 65,
  /** Jobs posted while the helper slept, which the caller had to wake it for (statistics). */
  WAKES: 66,
  /** First of the job's parameters (JOB_PARAMS). */
  PARAMS: 80,
  /** One slot per chunk of an axpy job (at most 16), set by the helper once it has computed the chunk: a
   *  caller whose helper failed redoes only the others. */
  AXPY_DONE: 112,
  COUNT: 128,
} as const;

/** Indices of a job's parameters; all are int32, offsets are in elements of the product's type. */
export const JOB_PARAMS = {
  /** 0: a product (gemm); 1: y += alpha * x over float32 arrays (axpy). */
  kind: 21,
  f64: 0, transA: 1, transB: 2, m: 3, n: 4, k: 5, lda: 6, ldb: 7,
  /** Raw copies of A and B, as stored (their row strides lda, ldb); for an axpy, x and y (n elements). */
  rawA: 8, rawB: 9,
  /** 1: chunks are ranges of rows (each thread packs all of a transposed B); 0: of columns (each packs its
   *  chunk's part of a transposed B). A, and B stored k×n, are read in place either way. */
  byRows: 10,
  /** Rows or columns per chunk (whole tiles), and how many chunks (chunkSpan): `bigFront` of chunkSize
   *  from the start, `bigBack` of chunkSize from backStart on, and between them chunks of tailSize (smaller,
   *  so that the threads, which take chunks from either end, meet on small ones). */
  chunkSize: 11, chunks: 12, bigFront: 19, tailSize: 20, bigBack: 22, backStart: 23,
  /** The padded C, mPad×nPad with row stride nPad. */
  cBase: 13,
  /** 1 when the padded C already holds C (beta 1): the first depth block accumulates onto it. */
  accumulate: 14,
  /** Each thread's region for all of Bᵀ packed (row chunks of a transposed B; thread 0, thread 1). */
  full0: 15, full1: 16,
  /** Each thread's region for its chunk's part of Bᵀ packed, one depth block (column chunks). */
  part0: 17, part1: 18,
  /** An axpy's alpha, the two halves of its float64 bits. */
  alphaLo: 24, alphaHi: 25,
  COUNT: 26,
} as const;

/** The CLAIM slot: (job tag << 24) | (first unclaimed chunk << 12) | (one past the last unclaimed chunk).
 *  The caller claims chunks from the front, the helper from the back. */
export const TAG_MASK = 0x7f;
export const MAX_CHUNKS = 4095;

/** The first row or column of chunk `i` and its size (before clipping to the extent), by the rule of
 *  JOB_PARAMS.chunkSize. */
export function chunkSpan(i: number, chunks: number, chunkSize: number, bigFront: number, bigBack: number, backStart: number, tailSize: number): [number, number] {
  if (i < bigFront) return [i * chunkSize, chunkSize];
  if (i >= chunks - bigBack) return [backStart + (i - chunks + bigBack) * chunkSize, chunkSize];
  const start = bigFront * chunkSize + (i - bigFront) * tailSize;
  return [start, Math.min(tailSize, backStart - start)];
}

/** Export names of the block kernels and the strip packer for one element type. */
export interface KernelNames {
  /** The kernel that reads A's strips a row stride apart (Aᵀ stored k×m, in place). */
  kernel: string;
  /** The kernel that reads A in place from its row-major storage (A stored m×k). */
  kernelRows: string;
  /** Packs Bᵀ (stored n×k) into NR-wide strips: the only operand whose NR values of a depth step are not
   *  side by side in storage. */
  packBT: string;
}

/** What both threads need to run a job: kernel names and tile shapes ([float32, float64]), block sizes. */
export interface JobConfig {
  names: [KernelNames, KernelNames];
  shapes: [{ mr: number; nr: number; bytes: number }, { mr: number; nr: number; bytes: number }];
  kc: number;
  mc: number;
  /** Microseconds the helper polls for the next job after one before it sleeps (0: it sleeps at once). */
  spinUs: number;
}

type BlockKernel = (mStrips: number, nStrips: number, kc: number, a: number, aRow: number, aStrip: number,
  b: number, bRow: number, bStrip: number, c: number, ldcBytes: number, accumulate: number) => void;
type RowsKernel = (mStrips: number, nStrips: number, kc: number, a: number, aRow: number, aStrip: number,
  b: number, bRow: number, bStrip: number, c: number, ldcBytes: number, accumulate: number, aLane: number) => void;
type Packer = (src: number, ld: number, strips: number, kc: number, dst: number) => void;
type Axpy = (alpha: number, x: number, y: number, pairs: number) => void;

/** One element type's kernels. */
export interface TypeKernels { kernel: BlockKernel; kernelRows: RowsKernel; packBT: Packer }

/** A thread's kernels as functions ([float32, float64], and the axpy), looked up in its instance's exports
 *  once: loading an export by a name that changes from call to call (kernel, kernelRows; F32, F64) sent
 *  Chromium's optimizing compilers back to the interpreter at every change. */
export interface ThreadKernels { types: [TypeKernels, TypeKernels]; axpy: Axpy }

export function threadKernels(wasm: Record<string, unknown>, cfg: JobConfig): ThreadKernels {
  const of = (names: KernelNames): TypeKernels => ({
    kernel: wasm[names.kernel] as BlockKernel, kernelRows: wasm[names.kernelRows] as RowsKernel, packBT: wasm[names.packBT] as Packer,
  });
  return { types: [of(cfg.names[0]), of(cfg.names[1])], axpy: wasm.axpyF32 as Axpy };
}

/**
 * Claims and computes chunks of the job posted as `seq` until none is left; returns how many this thread
 * computed. Thread 0 (the caller) claims from the front, thread 1 (the helper) from the back. Every claimed
 * chunk is counted in DONE, also when it throws, so the caller never waits forever. `p` holds the job's
 * parameters; the helper reloads them when its claim turns out to belong to a later job than `seq` (the
 * tag has 7 bits), which cannot be posted before that chunk is done.
 */
export function runJob(kernels: ThreadKernels, cfg: JobConfig, ctl: Int32Array, p: number[],
  thread: number, seq: number, S: typeof SLOTS, P: typeof JOB_PARAMS): number {
  let fullPacked = false;
  /** An axpy job's alpha, decoded from its parameters at its first chunk. */
  let alpha: number | undefined;
  let computed = 0;
  for (;;) {
    const w = Atomics.load(ctl, S.CLAIM);
    if (w >>> 24 !== (seq & 0x7f)) break;
    const lo = (w >>> 12) & 4095, hi = w & 4095;
    if (lo >= hi) break;
    if (Atomics.compareExchange(ctl, S.CLAIM, w, thread === 0 ? w + 4096 : w - 1) !== w) continue;
    const chunk = thread === 0 ? lo : hi - 1;
    if (thread !== 0) {
      const now = Atomics.load(ctl, S.SEQ);
      if (now !== seq) {
        seq = now;
        for (let i = 0; i < P.COUNT; i++) p[i] = Atomics.load(ctl, S.PARAMS + i);
        fullPacked = false;
        alpha = undefined;
      }
    }
    try {
      const [start, size] = chunkSpan(chunk, p[P.chunks], p[P.chunkSize], p[P.bigFront], p[P.bigBack], p[P.backStart], p[P.tailSize]);
      if (p[P.kind] === 1) {
        if (alpha === undefined) {
          const bits = new Int32Array([p[P.alphaLo], p[P.alphaHi]]);
          alpha = new Float64Array(bits.buffer)[0];
        }
        const pairs = Math.min(size, p[P.n] - start) >> 1;
        if (pairs > 0) kernels.axpy(alpha, (p[P.rawA] + start) * 4, (p[P.rawB] + start) * 4, pairs);
        Atomics.store(ctl, S.AXPY_DONE + chunk, 1);
      } else {
        fullPacked = gemmChunk(kernels, cfg, p, P, thread, start, size, fullPacked);
      }
      computed++;
    } finally {
      Atomics.add(ctl, S.DONE, 1);
      if (thread !== 0 && Atomics.load(ctl, S.CALLER_WAIT) === 1) Atomics.notify(ctl, S.DONE);
    }
  }
  return computed;
}

/** Runs the block kernel on rows [r0, r0 + rows) (whole strips) of C, columns [col0, col0 + cols), for the
 *  depth block of kc steps from p0, with B's strips at byte address bAt (a plain function, not a closure
 *  per chunk: the collector's work in a training step). */
export function gemmBlock(kernels: ThreadKernels, cfg: JobConfig, p: ArrayLike<number>, P: typeof JOB_PARAMS, r0: number, rows: number,
  p0: number, kc: number, bAt: number, bRow: number, bStrip: number, col0: number, cols: number): void {
  const type = p[P.f64];
  const { mr, nr, bytes } = cfg.shapes[type];
  const lda = p[P.lda], rawA = p[P.rawA], cBase = p[P.cBase];
  const nPad = Math.ceil(p[P.n] / nr) * nr;
  const mcBlock = Math.floor(cfg.mc / mr) * mr;
  const add = p0 > 0 || p[P.accumulate] === 1 ? 1 : 0;
  for (let r = r0; r < r0 + rows; r += mcBlock) {
    const mc = Math.min(mcBlock, r0 + rows - r);
    const cAt = (cBase + r * nPad + col0) * bytes;
    if (p[P.transA] === 1) {
      kernels.types[type].kernel(mc / mr, cols / nr, kc, (rawA + r + p0 * lda) * bytes, lda * bytes, mr * bytes, bAt, bRow, bStrip, cAt, nPad * bytes, add);
    } else {
      kernels.types[type].kernelRows(mc / mr, cols / nr, kc, (rawA + r * lda + p0) * bytes, bytes, mr * lda * bytes, bAt, bRow, bStrip, cAt, nPad * bytes, add, lda * bytes);
    }
  }
}

/** Computes the product's rows or columns [start, start + size) (clipped to C) into the padded C; returns
 *  whether this thread's region holds all of Bᵀ packed (row chunks pack it once per job: `fullPacked`). */
export function gemmChunk(kernels: ThreadKernels, cfg: JobConfig, p: ArrayLike<number>, P: typeof JOB_PARAMS,
  thread: number, start: number, size: number, fullPacked: boolean): boolean {
  const type = p[P.f64];
  const { mr, nr, bytes } = cfg.shapes[type];
  const transB = p[P.transB] === 1;
  const m = p[P.m], n = p[P.n], k = p[P.k], ldb = p[P.ldb], rawB = p[P.rawB];
  const full = thread === 0 ? p[P.full0] : p[P.full1];
  const part = thread === 0 ? p[P.part0] : p[P.part1];
  const packBT = kernels.types[type].packBT;
  const kcMax = cfg.kc;
  const mPad = Math.ceil(m / mr) * mr;
  const nPad = Math.ceil(n / nr) * nr;
  if (p[P.byRows] === 1) {
    if (transB && !fullPacked) {
      // every chunk needs all of Bᵀ: packed once, all depth blocks, into this thread's region
      for (let p0 = 0; p0 < k; p0 += kcMax) packBT((rawB + p0) * bytes, ldb * bytes, nPad / nr, Math.min(kcMax, k - p0), (full + p0 * nPad) * bytes);
    }
    const rowsPad = Math.ceil(Math.min(size, m - start) / mr) * mr;
    for (let p0 = 0; p0 < k; p0 += kcMax) {
      const kc = Math.min(kcMax, k - p0);
      if (transB) gemmBlock(kernels, cfg, p, P, start, rowsPad, p0, kc, (full + p0 * nPad) * bytes, nr * bytes, nr * kc * bytes, 0, nPad);
      else gemmBlock(kernels, cfg, p, P, start, rowsPad, p0, kc, (rawB + p0 * ldb) * bytes, ldb * bytes, nr * bytes, 0, nPad);
    }
    return transB;
  }
  const colsPad = Math.ceil(Math.min(size, n - start) / nr) * nr;
  for (let p0 = 0; p0 < k; p0 += kcMax) {
    const kc = Math.min(kcMax, k - p0);
    if (transB) {
      packBT((rawB + start * ldb + p0) * bytes, ldb * bytes, colsPad / nr, kc, part * bytes);
      gemmBlock(kernels, cfg, p, P, 0, mPad, p0, kc, part * bytes, nr * bytes, nr * kc * bytes, start, colsPad);
    } else gemmBlock(kernels, cfg, p, P, 0, mPad, p0, kc, (rawB + start + p0 * ldb) * bytes, ldb * bytes, nr * bytes, start, colsPad);
  }
  return fullPacked;
}

/**
 * The helper's loop: sleeps until a job is posted, takes chunks with `run` (runJob)
 * as thread 1, and sleeps again. Never returns; on an error it flags FAILED and rethrows (the caller then
 * computes alone).
 */
export function helperLoop(ctl: Int32Array, kernels: ThreadKernels, cfg: JobConfig,
  S: typeof SLOTS, P: typeof JOB_PARAMS, run: typeof runJob): never {
  const params = new Array<number>(P.COUNT).fill(0);
  let seen = Atomics.load(ctl, S.SEQ);
  for (;;) {
    // Polls for the next job a while before sleeping: a training step's products come less than a
    // millisecond apart, and a job posted while the helper polls needs no wake-up (no futex call for the
    // caller, no scheduler latency for the helper).
    let seq = Atomics.load(ctl, S.SEQ);
    if (seq === seen && cfg.spinUs > 0) {
      const until = performance.now() + cfg.spinUs / 1000;
      for (let i = 1; (seq = Atomics.load(ctl, S.SEQ)) === seen; i++) {
        if ((i & 255) === 0 && performance.now() > until) break;
      }
    }
    if (seq === seen) {
      Atomics.store(ctl, S.ASLEEP, 1);
      Atomics.wait(ctl, S.SEQ, seen);
      Atomics.store(ctl, S.ASLEEP, 0);
      seq = Atomics.load(ctl, S.SEQ);
    }
    if (seq === seen) continue;
    seen = seq;
    // NOTE: the caller copies a job's operands in and writes its parameters before its CLAIM and SEQ, and
    // the next job's only after every chunk of this one is done: if a claim below succeeds, the operands
    // are in memory and these are this job's parameters.
    for (let i = 0; i < P.COUNT; i++) params[i] = Atomics.load(ctl, S.PARAMS + i);
    try {
      const computed = run(kernels, cfg, ctl, params, 1, seq, S, P);
      if (computed > 0) {
        Atomics.add(ctl, S.HELPER_CHUNKS, computed);
        Atomics.add(ctl, S.HELPER_JOBS, 1);
      }
    } catch (error) {
      Atomics.store(ctl, S.FAILED, 1);
      throw error;
    }
  }
}
