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
 * NOTE: the functions here use nothing but their arguments (no imports, no module constants, no closures
 * but their own):
 * the Node helper runs their source text (Function.prototype.toString), the browser's module worker
 * imports them.
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
  COUNT: 112,
} as const;

/** Indices of a job's parameters; all are int32, offsets are in elements of the product's type. */
export const JOB_PARAMS = {
  f64: 0, transA: 1, transB: 2, m: 3, n: 4, k: 5, lda: 6, ldb: 7,
  /** Raw copies of A and B, as stored (their row strides lda, ldb). */
  rawA: 8, rawB: 9,
  /** 1: chunks are ranges of rows (each thread packs all of a transposed B); 0: of columns (each packs its
   *  chunk's part of a transposed B). A, and B stored k×n, are read in place either way. */
  byRows: 10,
  /** Rows or columns per chunk (whole tiles), and how many chunks: the first `bigChunks` of chunkSize, the
   *  others of tailSize (smaller, so that the thread that finishes first waits less for the other). */
  chunkSize: 11, chunks: 12, bigChunks: 19, tailSize: 20,
  /** The padded C, mPad×nPad with row stride nPad. */
  cBase: 13,
  /** 1 when the padded C already holds C (beta 1): the first depth block accumulates onto it. */
  accumulate: 14,
  /** Each thread's region for all of Bᵀ packed (row chunks of a transposed B; thread 0, thread 1). */
  full0: 15, full1: 16,
  /** Each thread's region for its chunk's part of Bᵀ packed, one depth block (column chunks). */
  part0: 17, part1: 18,
  COUNT: 21,
} as const;

/** Bits of the job tag in the CLAIM slot (the low 12 bits count the chunks left). */
export const TAG_MASK = 0x7ffff;
export const MAX_CHUNKS = 4095;

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

/**
 * Claims and computes chunks of the job tagged `tag` until none is left; returns how many this thread
 * computed. Every claimed chunk is counted in DONE, also when it throws, so the caller never waits forever.
 */
export function runJob(wasm: Record<string, unknown>, cfg: JobConfig, ctl: Int32Array, p: ArrayLike<number>,
  thread: number, tag: number, S: typeof SLOTS, P: typeof JOB_PARAMS): number {
  const type = p[P.f64];
  const names = cfg.names[type];
  const { mr, nr, bytes } = cfg.shapes[type];
  const transA = p[P.transA] === 1, transB = p[P.transB] === 1;
  const m = p[P.m], n = p[P.n], k = p[P.k], lda = p[P.lda], ldb = p[P.ldb];
  const rawA = p[P.rawA], rawB = p[P.rawB], byRows = p[P.byRows] === 1;
  const chunkSize = p[P.chunkSize], chunks = p[P.chunks], bigChunks = p[P.bigChunks], tailSize = p[P.tailSize], cBase = p[P.cBase], accumulate = p[P.accumulate];
  const full = thread === 0 ? p[P.full0] : p[P.full1];
  const part = thread === 0 ? p[P.part0] : p[P.part1];
  const kernel = wasm[names.kernel] as BlockKernel;
  const kernelRows = wasm[names.kernelRows] as RowsKernel;
  const packBT = wasm[names.packBT] as Packer;
  const kcMax = cfg.kc;
  const mcBlock = Math.floor(cfg.mc / mr) * mr;
  const mPad = Math.ceil(m / mr) * mr;
  const nPad = Math.ceil(n / nr) * nr;
  /** Runs the kernel on rows [r0, r0 + rows) (whole strips) of a depth block from p0, B's strips at bAt. */
  const block = (r0: number, rows: number, p0: number, kc: number, bAt: number, bRow: number, bStrip: number, col0: number, cols: number): void => {
    const add = p0 > 0 || accumulate === 1 ? 1 : 0;
    for (let r = r0; r < r0 + rows; r += mcBlock) {
      const mc = Math.min(mcBlock, r0 + rows - r);
      const cAt = (cBase + r * nPad + col0) * bytes;
      if (transA) {
        kernel(mc / mr, cols / nr, kc, (rawA + r + p0 * lda) * bytes, lda * bytes, mr * bytes, bAt, bRow, bStrip, cAt, nPad * bytes, add);
      } else {
        kernelRows(mc / mr, cols / nr, kc, (rawA + r * lda + p0) * bytes, bytes, mr * lda * bytes, bAt, bRow, bStrip, cAt, nPad * bytes, add, lda * bytes);
      }
    }
  };
  let fullPacked = false;
  let computed = 0;
  for (;;) {
    const w = Atomics.load(ctl, S.CLAIM);
    if (w >>> 12 !== tag) break;
    const left = w & 4095;
    if (left === 0) break;
    if (Atomics.compareExchange(ctl, S.CLAIM, w, w - 1) !== w) continue;
    const chunk = chunks - left;
    try {
      const size = chunk < bigChunks ? chunkSize : tailSize;
      const start = chunk < bigChunks ? chunk * chunkSize : bigChunks * chunkSize + (chunk - bigChunks) * tailSize;
      if (byRows) {
        if (transB && !fullPacked) {
          // every chunk needs all of Bᵀ: packed once, all depth blocks, into this thread's region
          for (let p0 = 0; p0 < k; p0 += kcMax) packBT((rawB + p0) * bytes, ldb * bytes, nPad / nr, Math.min(kcMax, k - p0), (full + p0 * nPad) * bytes);
          fullPacked = true;
        }
        const rowsPad = Math.ceil(Math.min(size, m - start) / mr) * mr;
        for (let p0 = 0; p0 < k; p0 += kcMax) {
          const kc = Math.min(kcMax, k - p0);
          if (transB) block(start, rowsPad, p0, kc, (full + p0 * nPad) * bytes, nr * bytes, nr * kc * bytes, 0, nPad);
          else block(start, rowsPad, p0, kc, (rawB + p0 * ldb) * bytes, ldb * bytes, nr * bytes, 0, nPad);
        }
      } else {
        const colsPad = Math.ceil(Math.min(size, n - start) / nr) * nr;
        for (let p0 = 0; p0 < k; p0 += kcMax) {
          const kc = Math.min(kcMax, k - p0);
          if (transB) {
            packBT((rawB + start * ldb + p0) * bytes, ldb * bytes, colsPad / nr, kc, part * bytes);
            block(0, mPad, p0, kc, part * bytes, nr * bytes, nr * kc * bytes, start, colsPad);
          } else block(0, mPad, p0, kc, (rawB + start + p0 * ldb) * bytes, ldb * bytes, nr * bytes, start, colsPad);
        }
      }
      computed++;
    } finally {
      Atomics.add(ctl, S.DONE, 1);
      if (thread !== 0 && Atomics.load(ctl, S.CALLER_WAIT) === 1) Atomics.notify(ctl, S.DONE);
    }
  }
  return computed;
}

/**
 * The helper's loop: sleeps until a job is posted, takes chunks with `run` (runJob)
 * as thread 1, and sleeps again. Never returns; on an error it flags FAILED and rethrows (the caller then
 * computes alone).
 */
export function helperLoop(ctl: Int32Array, wasm: Record<string, unknown>, cfg: JobConfig,
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
      const computed = run(wasm, cfg, ctl, params, 1, seq & 0x7ffff, S, P);
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
