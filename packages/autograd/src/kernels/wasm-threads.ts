/**
 * The WebAssembly kernels' helper thread: one worker that instantiates the kernel module over the same
 * shared memory and takes chunks of large products (wasm-parts.ts), in Node through worker_threads and in
 * browsers through a module Web Worker (wasm-helper.worker.ts), which needs a cross-origin-isolated page
 * (COOP same-origin + COEP require-corp) for SharedArrayBuffer.
 *
 * Starting a worker is asynchronous while a gemm is not: the helper starts with the first product large
 * enough to split (or with initWasmThreads()), and products run on the calling thread alone until it is
 * ready; the results are the same bits either way. A page that wants both threads from the first step,
 * or wants to show the thread count, awaits initWasmThreads() first.
 */
import { loadWasmBackend, type WasmBackend } from "./wasm-backend.ts";
import { chunkSpan, gemmBlock, gemmChunk, helperLoop, JOB_PARAMS, runJob, SLOTS, TAG_MASK, threadKernels } from "./wasm-parts.ts";

/** The helper's state: "not started" (it starts with the first product large enough to split),
 *  "starting", "ready", "failed" (products stay on the calling thread), "unavailable" (one thread only). */
export type WasmHelperState = "not started" | "starting" | "ready" | "failed" | "unavailable";

export interface WasmThreadingInfo {
  /** Threads the WebAssembly kernels use: 2 (the caller and the helper worker, once it is ready) or 1. */
  threads: 1 | 2;
  helper: WasmHelperState;
  /** Where the helper runs: Node's worker_threads or a module Web Worker. */
  workerKind?: "worker_threads" | "web-worker";
  /** A sentence saying why, for a page or a log: the thread count and its reason. */
  reason: string;
}

/** A Web Worker, as much of it as the helper uses (the DOM's Worker fits). */
export interface HelperWorker {
  postMessage(message: unknown): void;
  addEventListener(type: "message" | "error" | "messageerror", listener: (event: { data?: unknown; message?: string }) => void): void;
  terminate(): void;
}

export interface InitWasmThreadsOptions {
  /** Makes the helper's module worker, for a bundler that does not rewrite
   *  `new Worker(new URL("./wasm-helper.worker.ts", import.meta.url), { type: "module" })` (Vite and webpack do). */
  worker?: () => HelperWorker;
  /** The URL of the helper's worker script (the package's dist/kernels/wasm-helper.worker.js, or a bundle of
   *  it), loaded as a module worker. */
  workerUrl?: string | URL;
  /** How long to wait for the helper before giving up on it, in milliseconds (default 10000). */
  timeoutMs?: number;
}

interface Helper {
  control: Int32Array;
  state: "starting" | "ready" | "failed";
  kind: "worker_threads" | "web-worker";
  failure?: string;
  ready: Promise<void>;
}

/** How long the caller waits for a chunk the helper claimed before it declares the helper dead. */
const HELPER_STALL_MS = 10_000;

// NOTE: a browser global the project's lib (ES2022, no DOM) does not declare; referenced only in browsers.
declare const Worker: new (url: string | URL, options?: { type?: "module" | "classic"; name?: string }) => HelperWorker;

let helper: Helper | undefined;
let threadSetting: { threads: number; why: string } | undefined;

function nodeProcess(): NodeJS.Process | undefined {
  const proc = (globalThis as { process?: NodeJS.Process }).process;
  return typeof proc?.getBuiltinModule === "function" ? proc : undefined;
}

function webWorkers(): boolean {
  return typeof (globalThis as { Worker?: unknown }).Worker === "function";
}

/** The thread count when nobody set one: TAPEGRAD_WASM_THREADS (Node), else 2 where there are two cores. */
function defaultThreads(): { threads: number; why: string } {
  const proc = nodeProcess();
  const env = proc?.env?.TAPEGRAD_WASM_THREADS;
  if (env !== undefined && env !== "") {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`TAPEGRAD_WASM_THREADS=${env}: expected a positive integer`);
    return { threads: Math.min(n, 2), why: `TAPEGRAD_WASM_THREADS=${env}` };
  }
  let cores = 1;
  try {
    if (proc) cores = proc.getBuiltinModule("node:os").availableParallelism();
    else cores = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
  } catch {
    cores = 1;
  }
  return { threads: cores >= 2 ? 2 : 1, why: `${cores} CPU core${cores === 1 ? "" : "s"}` };
}

function setting(): { threads: number; why: string } {
  threadSetting ??= defaultThreads();
  return threadSetting;
}

/** Why no helper can run here, or undefined when one can. */
function blocker(be: WasmBackend | null): string | undefined {
  if (!be) return "this runtime has no WebAssembly SIMD";
  if (!be.shared) return be.unsharedReason ?? "no shared WebAssembly memory";
  if (!nodeProcess() && !webWorkers()) return "this runtime has neither Node's worker_threads nor Web Workers";
  return undefined;
}

/** Where the helper may run, the setting allows two threads and it has not failed. */
function twoThreads(be: WasmBackend | null): boolean {
  return setting().threads > 1 && blocker(be) === undefined && helper?.state !== "failed";
}

/**
 * Threads the WebAssembly kernels use: 2 (the caller and one helper worker) or 1. The helper needs
 * shared WebAssembly memory (in a browser: a cross-origin-isolated page) and worker threads (Node's
 * worker_threads or Web Workers); elsewhere, or after the helper failed, this is 1. With `count`, sets it
 * for this process (1 keeps every product on the calling thread) and returns the previous value.
 * TAPEGRAD_WASM_THREADS sets the default in Node; wasmThreadingInfo() says why.
 * @example wasmGemmThreads(1) // single-threaded wasm gemm
 */
export function wasmGemmThreads(count?: number): number {
  const previous = twoThreads(loadWasmBackend()) ? 2 : 1;
  if (count !== undefined) {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`wasmGemmThreads: expected a positive integer, got ${count}`);
    // NOTE: a helper already started stays, asleep in Atomics.wait, for a later wasmGemmThreads(2)
    threadSetting = { threads: Math.min(count, 2), why: `wasmGemmThreads(${count})` };
  }
  return previous;
}

/** The thread count, the helper's state and the reason, in words a page can show.
 *  @example wasmThreadingInfo().reason // "2 threads: the caller and a helper Web Worker over shared WebAssembly memory" */
export function wasmThreadingInfo(): WasmThreadingInfo {
  const be = loadWasmBackend();
  const stop = blocker(be);
  if (stop !== undefined) return { threads: 1, helper: "unavailable", reason: `1 thread: ${stop}` };
  const kind = helper?.kind ?? (nodeProcess() ? "worker_threads" : "web-worker");
  const where = kind === "worker_threads" ? "a helper worker thread (worker_threads)" : "a helper Web Worker";
  if (helper?.state === "failed") return { threads: 1, helper: "failed", workerKind: kind, reason: `1 thread: ${helper.failure}` };
  const { threads, why } = setting();
  const state = helper?.state ?? "not started";
  if (threads < 2) return { threads: 1, helper: state, workerKind: kind, reason: `1 thread: ${why}` };
  const reasons: Record<typeof state, string> = {
    "ready": `2 threads: the caller and ${where} over shared WebAssembly memory`,
    "starting": `2 threads once ${where} has started (until then products run on the calling thread)`,
    "not started": `2 threads: ${where} starts with the first product of 2^20 multiply-adds or more, or with initWasmThreads()`,
  };
  return { threads: 2, helper: state, workerKind: kind, reason: reasons[state] };
}

/**
 * Starts the helper worker now (where two threads are possible and allowed) and resolves when it is ready
 * or has failed, with the resulting thread count and reason; it never rejects. In a browser, call it once
 * before training: products before it run on one thread (and a large one would start the helper from the
 * default script URL). `options` say how to load the worker script where the bundler does not handle
 * `new Worker(new URL(..., import.meta.url))`; with them, a helper that failed is started again.
 * @example const { threads, reason } = await initWasmThreads(); // threads: 2 in a cross-origin-isolated page
 */
export async function initWasmThreads(options: InitWasmThreadsOptions = {}): Promise<WasmThreadingInfo> {
  const be = loadWasmBackend();
  // a helper that failed (say, started by a product with the default script URL) is tried again when the
  // page names the script
  if (helper?.state === "failed" && (options.worker !== undefined || options.workerUrl !== undefined)) helper = undefined;
  if (be && twoThreads(be)) {
    const h = startHelper(be, options);
    if (h) await h.ready;
  }
  return wasmThreadingInfo();
}

/** Parts posted to the helper worker and what it did with them: `posted` products split, `parts` chunks
 *  the helper computed, `jobs` products it took part in (in the others the caller computed every chunk),
 *  `wakes` products posted while it slept (it polls for the next job for TAPEGRAD_HELPER_SPIN_US after each
 *  one, 1 ms by default), `callerSleeps` the times the calling thread slept waiting for the helper's last
 *  chunk (it spins first). */
export function wasmHelperStats(): { ready: boolean; posted: number; parts: number; jobs: number; wakes: number; callerSleeps: number } {
  if (!helper) return { ready: false, posted: 0, parts: 0, jobs: 0, wakes: 0, callerSleeps };
  const c = helper.control;
  return {
    ready: helper.state === "ready", posted: Atomics.load(c, SLOTS.SEQ), parts: Atomics.load(c, SLOTS.HELPER_CHUNKS),
    jobs: Atomics.load(c, SLOTS.HELPER_JOBS), wakes: Atomics.load(c, SLOTS.WAKES), callerSleeps,
  };
}

/** Times the caller went to sleep waiting for the helper's last chunk (finishJob). */
let callerSleeps = 0;

function fail(h: Helper, why: string): void {
  if (h.state === "failed") return;
  h.state = "failed";
  h.failure = why;
  Atomics.store(h.control, SLOTS.FAILED, 1);
}

/** The helper's program in Node (CommonJS, evaluated by worker_threads): the same functions as the
 *  browser's worker module, as source text. */
function nodeHelperSource(): string {
  return `
var __name = function (f) { return f; }; // esbuild's keepNames helper, in case the sources mention it
const { workerData, parentPort } = require("node:worker_threads");
const chunkSpan = (${chunkSpan.toString()});
const gemmBlock = (${gemmBlock.toString()});
const gemmChunk = (${gemmChunk.toString()});
const runJob = (${runJob.toString()});
const threadKernels = (${threadKernels.toString()});
const helperLoop = (${helperLoop.toString()});
const { module, memory, control, config, slots, params } = workerData;
const ctl = new Int32Array(control);
let instance;
try {
  instance = new WebAssembly.Instance(module, { env: { memory } });
} catch (error) {
  Atomics.store(ctl, slots.FAILED, 1);
  throw error;
}
Atomics.store(ctl, slots.READY, 1);
parentPort.postMessage("ready");
helperLoop(ctl, threadKernels(instance.exports, config), config, slots, params, runJob);
`;
}

/** The browser's default worker: the literal form bundlers (Vite, webpack) recognise and bundle. */
function defaultWebWorker(): HelperWorker {
  return new Worker(new URL("./wasm-helper.worker.ts", import.meta.url), { type: "module" });
}

/** Starts the helper once; undefined where it cannot run. */
function startHelper(be: WasmBackend, options: InitWasmThreadsOptions = {}): Helper | undefined {
  if (helper) return helper;
  if (blocker(be) !== undefined) return undefined;
  const control = new Int32Array(new SharedArrayBuffer(SLOTS.COUNT * 4));
  const timeoutMs = options.timeoutMs ?? 10_000;
  const proc = nodeProcess();
  let settle: () => void = () => {};
  const h: Helper = {
    control,
    state: "starting",
    kind: proc ? "worker_threads" : "web-worker",
    ready: new Promise<void>((resolve) => { settle = resolve; }),
  };
  helper = h;
  const timer = setTimeout(() => {
    fail(h, `the helper worker did not start within ${timeoutMs} ms`);
    settle();
  }, timeoutMs);
  const onReady = (): void => {
    clearTimeout(timer);
    if (h.state === "starting") h.state = "ready";
    settle();
  };
  /** Lets the process exit with the helper still there (Node). */
  let release = (): void => {};
  const onFailure = (why: string): void => {
    clearTimeout(timer);
    release();
    fail(h, why);
    settle();
  };
  try {
    if (proc) {
      const { Worker: NodeWorker } = proc.getBuiltinModule("node:worker_threads");
      const worker = new NodeWorker(nodeHelperSource(), {
        eval: true,
        // NOTE: no --import tsx or other loader in the helper: it runs plain JavaScript
        execArgv: [],
        workerData: { module: be.module, memory: be.memory, control: control.buffer, config: be.config, slots: SLOTS, params: JOB_PARAMS },
      });
      // NOTE: referenced until it is ready, so that a process awaiting initWasmThreads() stays alive; then
      // unreferenced, so that an idle helper never keeps a process from exiting
      release = () => worker.unref();
      worker.once("message", () => {
        release();
        onReady();
      });
      worker.on("error", (error: Error) => onFailure(`the helper worker failed: ${error.message}`));
      worker.once("exit", (code: number) => onFailure(`the helper worker exited (code ${code})`));
    } else {
      const worker = options.worker ? options.worker()
        : options.workerUrl !== undefined ? new Worker(options.workerUrl, { type: "module" }) : defaultWebWorker();
      worker.addEventListener("message", (event) => {
        const data = event.data as { ready?: boolean; error?: string } | undefined;
        if (data?.ready) onReady();
        else onFailure(`the helper worker failed: ${data?.error ?? "unknown error"}`);
      });
      worker.addEventListener("error", (event) => onFailure(`the helper worker failed to load or run${event.message ? `: ${event.message}` : " (is its script served, as a module, same-origin?)"}`));
      worker.addEventListener("messageerror", () => onFailure("the helper worker could not receive the WebAssembly module and memory"));
      worker.postMessage({ module: be.module, memory: be.memory, control: control.buffer, config: be.config });
    }
  } catch (error) {
    onFailure(`the helper worker could not be created: ${(error as Error).message}`);
  }
  return h;
}

/** The helper's control array when it is ready to take chunks of a product (starting it on first use),
 *  else null: then the product runs on the calling thread. */
export function readyHelper(be: WasmBackend): Int32Array | null {
  if (!twoThreads(be)) return null;
  const h = helper ?? startHelper(be);
  if (h?.state === "ready") return h.control;
  if (h?.state === "starting" && Atomics.load(h.control, SLOTS.READY) === 1) {
    // ready before its message arrived (the caller has not yielded to the event loop since)
    h.state = "ready";
    return h.control;
  }
  return null;
}

/**
 * Posts a job (its parameters, `chunks` chunks to claim) whose operands are in memory, waking the helper;
 * returns its sequence number.
 * NOTE: posting before the copy would hide the helper's wake-up behind it, but on a busy machine the woken
 * helper can take the caller's core and then wait for operands the caller cannot copy.
 */
export function postJob(ctl: Int32Array, params: ArrayLike<number>, chunks: number): number {
  // plain stores: the atomic store of SEQ below publishes them to the helper, which reads them after it
  for (let i = 0; i < JOB_PARAMS.COUNT; i++) ctl[SLOTS.PARAMS + i] = params[i];
  Atomics.store(ctl, SLOTS.DONE, 0);
  const seq = (Atomics.load(ctl, SLOTS.SEQ) + 1) | 0;
  Atomics.store(ctl, SLOTS.CLAIM, ((seq & TAG_MASK) << 24) | chunks);
  Atomics.store(ctl, SLOTS.SEQ, seq);
  if (Atomics.load(ctl, SLOTS.ASLEEP) === 1) {
    Atomics.add(ctl, SLOTS.WAKES, 1);
    Atomics.notify(ctl, SLOTS.SEQ, 1);
  }
  return seq;
}

let blockingAllowed: boolean | undefined;

/** Whether this thread may block in Atomics.wait (not a browser's main thread). */
function canBlock(): boolean {
  if (blockingAllowed === undefined) {
    try {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
      blockingAllowed = true;
    } catch {
      blockingAllowed = false;
    }
  }
  return blockingAllowed;
}

/**
 * Waits until every chunk of the job is done: spins a little (the helper's last chunk is usually nearly
 * done), then sleeps in Atomics.wait where this thread may block (on a busy machine the helper may be
 * waiting for this core), else keeps spinning (a browser's main thread). False when the helper failed or
 * stalled: the caller then computes the whole job again on its own.
 */
export function finishJob(ctl: Int32Array, chunks: number): boolean {
  let spins = 0;
  let deadline = 0;
  for (let done = Atomics.load(ctl, SLOTS.DONE); done !== chunks; done = Atomics.load(ctl, SLOTS.DONE)) {
    if (++spins < 16384) continue;
    if (canBlock()) {
      Atomics.store(ctl, SLOTS.CALLER_WAIT, 1);
      if (Atomics.load(ctl, SLOTS.DONE) === done) {
        callerSleeps++;
        Atomics.wait(ctl, SLOTS.DONE, done, 1);
      }
      Atomics.store(ctl, SLOTS.CALLER_WAIT, 0);
    }
    if ((spins & 0xff) !== 0) continue;
    const now = performance.now();
    if (deadline === 0) deadline = now + HELPER_STALL_MS;
    else if (now > deadline) {
      if (helper) fail(helper, `the helper worker stopped responding (a chunk took over ${HELPER_STALL_MS / 1000} s)`);
      return false;
    }
  }
  if (Atomics.load(ctl, SLOTS.FAILED) === 1) {
    if (helper) fail(helper, "the helper worker threw while computing a product");
    return false;
  }
  return true;
}
