/**
 * The float32 elementwise loops in WebAssembly SIMD (wasm/loops-module.ts) for the wasm backend: the operands
 * are copied into the module's own memory (not shared: copies into shared memory run at a third of the
 * speed), the loop runs four lanes a step, and the result is copied back; an output in pinned memory (SGD's
 * update of a pinned weight) is computed where it is, in the gemm module's shared memory. The same bits as
 * the TypeScript loops of elementwise.ts, which the backends without WebAssembly SIMD (and small arrays)
 * keep running.
 */
import type { FloatArray } from "../dtype.ts";
import { gemmBackend } from "./gemm.ts";
import { nativeLoopsEnabled } from "./native-loops.ts";
import { loadWasmBackend, PAGE_BYTES, wasmApi, type WasmMemory } from "./wasm-backend.ts";
import { isPinned, scratchBlock } from "./wasm-heap.ts";
import { loopsModuleBytes } from "./wasm/loops-module.ts";

/** From this many elements the copies and the call pay for themselves against V8's loops (bench/NOTES.md,
 *  "Elementwise loops in WebAssembly"). */
export const WASM_LOOPS_MIN_ELEMENTS = 2048;

interface LoopsExports {
  memory: WasmMemory;
  axpyF32(alpha: number, x: number, y: number, pairs: number): void;
  reluF32(x: number, out: number, quads: number): void;
  reluBackwardF32(g: number, x: number, out: number, quads: number): void;
}

export interface WasmLoops {
  /** y[0..n) += alpha * x[0..n), as elementwise.ts's axpy. */
  axpy(alpha: number, x: Float32Array, y: Float32Array): void;
  /** out = relu(x), as elementwise.ts's unary("relu"). */
  relu(x: Float32Array, out: Float32Array): void;
  /** out = x <= 0 ? 0 : g, as elementwise.ts's reluBackward. */
  reluBackward(g: Float32Array, x: Float32Array, out: Float32Array): void;
}

let instance: LoopsExports | null | undefined;
/** Calls of the loops so far (tests check the kernels dispatch to them). */
let calls = 0;

/** Of them, calls that ran in place on a pinned output. */
let inPlaceCalls = 0;

export function wasmLoopsCalls(): number {
  return calls;
}

export function wasmLoopsInPlaceCalls(): number {
  return inPlaceCalls;
}
let view = new Float32Array(0);

function load(): LoopsExports | null {
  const api = wasmApi();
  if (!api) return null;
  try {
    const bytes = loopsModuleBytes();
    if (!api.validate(bytes)) return null;
    return new api.Instance(new api.Module(bytes), {}).exports as unknown as LoopsExports;
  } catch {
    return null;
  }
}

/** A view of the module's memory holding at least `floats` floats (growing detaches the old buffer). */
function memoryFor(e: LoopsExports, floats: number): Float32Array {
  const bytes = floats * 4;
  const have = e.memory.buffer.byteLength;
  if (have < bytes) e.memory.grow(Math.ceil((bytes - have) / PAGE_BYTES));
  if (view.buffer !== e.memory.buffer) view = new Float32Array(e.memory.buffer);
  return view;
}

/** Floats from `at` rounded up to whole 16-byte steps. */
const padded = (n: number): number => (n + 3) & ~3;

type LoopFunctions = Omit<LoopsExports, "memory">;

/** One loop: elements a step, the call on byte addresses (the inputs', then the output's) for `steps`
 *  steps, and the TypeScript loop from element `from` on (the elements of a last partial step, in place). */
interface Loop {
  step: number;
  call(e: LoopFunctions, addresses: readonly number[], steps: number): void;
  tail(from: number): void;
}

let sharedView = new Float32Array(0);
const addresses: number[] = [];

/**
 * Runs `loop` on `inputs` into `out`. Where `out` is pinned (wasm-heap.ts), in the gemm module's shared
 * memory: in place, with the inputs that are not pinned copied into a scratch block, and the last partial
 * step by the TypeScript loop (a whole step would write past the array). Otherwise in this module's own
 * memory: the inputs copied into consecutive spans (each `out.length` floats padded to whole steps), the
 * output's span copied back (the padding lanes compute garbage that is never copied).
 */
function run(inputs: readonly Float32Array[], out: Float32Array, loop: Loop): void {
  calls++;
  const n = out.length;
  const be = isPinned(out) ? loadWasmBackend() : null;
  if (be?.shared) {
    const main = n - (n % loop.step);
    if (main > 0) {
      const copied = inputs.filter((x) => !isPinned(x)).length;
      const start = copied > 0 ? scratchBlock(be, "loops", copied * main * 4) : 0;
      if (start >= 0) {
        if (sharedView.buffer !== be.memory.buffer) sharedView = new Float32Array(be.memory.buffer);
        addresses.length = 0;
        let at = start;
        for (const x of inputs) {
          if (isPinned(x)) addresses.push(x.byteOffset);
          else {
            sharedView.set(x.subarray(0, main), at / 4);
            addresses.push(at);
            at += main * 4;
          }
        }
        addresses.push(out.byteOffset);
        loop.call(be.exports as unknown as LoopFunctions, addresses, main / loop.step);
        loop.tail(main);
        inPlaceCalls++;
        return;
      }
    }
  }
  const e = instance!;
  const span = padded(n);
  const mem = memoryFor(e, (inputs.length + 1) * span);
  addresses.length = 0;
  for (let i = 0; i < inputs.length; i++) {
    mem.set(inputs[i], i * span);
    addresses.push(i * span * 4);
  }
  // an output that is also an input (axpy's y) is computed in that input's span
  const slot = inputs.indexOf(out);
  const outAt = (slot >= 0 ? slot : inputs.length) * span;
  addresses.push(outAt * 4);
  loop.call(e, addresses, Math.ceil(n / loop.step));
  out.set(mem.subarray(outAt, outAt + n));
}

const loops: WasmLoops = {
  axpy: (alpha, x, y) => run([x, y], y, {
    step: 2,
    call: (e, [xAt, yAt], steps) => e.axpyF32(alpha, xAt, yAt, steps),
    tail: (from) => { for (let i = from; i < y.length; i++) y[i] += alpha * x[i]; },
  }),
  relu: (x, out) => run([x], out, {
    step: 4,
    call: (e, [xAt, outAt], steps) => e.reluF32(xAt, outAt, steps),
    tail: (from) => { for (let i = from; i < out.length; i++) { const v = x[i]; out[i] = v > 0 ? v : v !== v ? v : 0; } },
  }),
  reluBackward: (g, x, out) => run([g, x], out, {
    step: 4,
    call: (e, [gAt, xAt, outAt], steps) => e.reluBackwardF32(gAt, xAt, outAt, steps),
    tail: (from) => { for (let i = from; i < out.length; i++) out[i] = x[i] <= 0 ? 0 : g[i]; },
  }),
};

/** The WebAssembly loops, loaded whatever the backend (tests compare them with the TypeScript loops), or null
 *  where this runtime has no WebAssembly SIMD. */
export function wasmLoopsAnyBackend(): WasmLoops | null {
  if (instance === undefined) instance = load();
  return instance ? loops : null;
}

/** True when the views share memory without starting at the same element: the TypeScript loops then read
 *  elements they wrote, which copies in and out would not reproduce. */
function overlapsShifted(a: FloatArray, b: FloatArray): boolean {
  if (a.buffer !== b.buffer || a.byteOffset === b.byteOffset) return false;
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

/** The WebAssembly loops when the wasm backend is active and the compiled loops are enabled (setNativeLoops
 *  switches these too), for float32 arrays of at least WASM_LOOPS_MIN_ELEMENTS of which the last (the
 *  output) overlaps no input at a shift; else null. */
export function wasmLoops(n: number, ...arrays: FloatArray[]): WasmLoops | null {
  if (n < WASM_LOOPS_MIN_ELEMENTS || !nativeLoopsEnabled() || gemmBackend() !== "wasm") return null;
  for (const a of arrays) if (!(a instanceof Float32Array)) return null;
  const out = arrays[arrays.length - 1];
  for (let i = 0; i < arrays.length - 1; i++) if (overlapsShifted(arrays[i], out)) return null;
  return wasmLoopsAnyBackend();
}
