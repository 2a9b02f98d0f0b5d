/**
 * The float32 elementwise loops in WebAssembly SIMD (wasm/loops-module.ts) for the wasm backend: the operands
 * are copied into the module's own memory (not shared: copies into shared memory run at a third of the
 * speed), the loop runs four lanes a step, and the result is copied back. The same bits as the TypeScript
 * loops of elementwise.ts, which the backends without WebAssembly SIMD (and small arrays) keep running.
 */
import type { FloatArray } from "../dtype.ts";
import { gemmBackend } from "./gemm.ts";
import { nativeLoopsEnabled } from "./native-loops.ts";
import { PAGE_BYTES, wasmApi, type WasmMemory } from "./wasm-backend.ts";
import { loopsModuleBytes } from "./wasm/loops-module.ts";

/** From this many elements the copies and the call pay for themselves against V8's loops (bench/NOTES.md,
 *  "Elementwise loops in WebAssembly"). */
export const WASM_LOOPS_MIN_ELEMENTS = 2048;

interface LoopsExports {
  memory: WasmMemory;
  axpyF32(alpha: number, x: number, y: number, pairs: number): void;
  reluF32(x: number, out: number, quads: number): void;
  reluBackwardF32(g: number, x: number, out: number, quads: number): void;
  sumRowsF32(x: number, out: number, rows: number, rowBytes: number, blocks: number): void;
}

export interface WasmLoops {
  /** y[0..n) += alpha * x[0..n), as elementwise.ts's axpy. */
  axpy(alpha: number, x: Float32Array, y: Float32Array): void;
  /** out = relu(x), as elementwise.ts's unary("relu"). */
  relu(x: Float32Array, out: Float32Array): void;
  /** out = x <= 0 ? 0 : g, as elementwise.ts's reluBackward. */
  reluBackward(g: Float32Array, x: Float32Array, out: Float32Array): void;
  /** out[o, i] = Σ_j x[o, j, i] in double, rounded once, as reduce.ts's sumAxis (inner > 1). */
  sumAxis(x: Float32Array, outer: number, n: number, inner: number, out: Float32Array): void;
}

let instance: LoopsExports | null | undefined;
/** Calls of the loops so far (tests check the kernels dispatch to them). */
let calls = 0;

export function wasmLoopsCalls(): number {
  return calls;
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

/** Floats rounded up to whole 16-byte steps. */
const padded = (n: number): number => (n + 3) & ~3;

/** Copies `inputs` into consecutive spans of the module's memory (each `out.length` floats padded to whole
 *  steps), runs `loop` on them (its span in floats) and copies span `outSlot` back into `out`. */
function run(inputs: readonly Float32Array[], out: Float32Array, outSlot: number, loop: (e: LoopsExports, span: number) => void): void {
  calls++;
  const e = instance!;
  const n = out.length, span = padded(n);
  if (n === 0) return;
  const mem = memoryFor(e, Math.max(inputs.length, outSlot + 1) * span);
  for (let i = 0; i < inputs.length; i++) mem.set(inputs[i], i * span);
  loop(e, span);
  out.set(mem.subarray(outSlot * span, outSlot * span + n));
}

const loops: WasmLoops = {
  axpy: (alpha, x, y) => run([x, y], y, 1, (e, span) => e.axpyF32(alpha, 0, span * 4, (y.length + 1) >> 1)),
  relu: (x, out) => run([x], out, 1, (e, span) => e.reluF32(0, span * 4, span >> 2)),
  reluBackward: (g, x, out) => run([g, x], out, 2, (e, span) => e.reluBackwardF32(0, span * 4, 2 * span * 4, span >> 2)),
  sumAxis(x, outer, n, inner, out) {
    calls++;
    const e = instance!;
    // x as it is, then 16 floats that the last block of the last row may read past it, then the sums, each
    // outer's row padded to whole blocks of 16 (the padding lanes sum garbage and are never copied out)
    const blocks = Math.ceil(inner / 16);
    const sums = padded(outer * n * inner + 16);
    const mem = memoryFor(e, sums + outer * blocks * 16);
    mem.set(x.subarray(0, outer * n * inner), 0);
    for (let o = 0; o < outer; o++) {
      const at = sums + o * blocks * 16;
      e.sumRowsF32(o * n * inner * 4, at * 4, n, inner * 4, blocks);
      out.set(mem.subarray(at, at + inner), o * inner);
    }
  },
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
