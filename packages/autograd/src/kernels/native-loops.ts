/**
 * Which elementwise loops go native. With the native backend (gemmBackend() === "native"), the large
 * contiguous loops of elementwise.ts and reduce.ts run as compiled C in the same addon as the BLAS gemm,
 * several times faster per element than V8's typed-array loops. Results are bit-identical to the
 * TypeScript loops (see native/elementwise.c), so a run gives the same numbers with or without the addon.
 * TAPEGRAD_BACKEND=wasm or js keeps every loop in TypeScript.
 */
import type { FloatArray } from "../dtype.ts";
import { gemmBackend } from "./gemm.ts";
import { nativeAddonCnn, nativeAddonLoops, type NativeCnnKernels, type NativeLoops } from "./gemm-native.ts";

/**
 * Below this many elements the TypeScript loop is as fast: the Node-API call and its argument checks cost
 * about a microsecond, which the C loop repays from about a thousand elements (timings: bench/NOTES.md,
 * "Native elementwise loops").
 */
export const NATIVE_MIN_ELEMENTS = 1024;

let loops: NativeLoops | null | undefined;
let enabled = true;

/** The native loops when the native backend is active and enabled, else null. */
export function nativeLoops(): NativeLoops | null {
  if (loops === undefined) loops = gemmBackend() === "native" ? nativeAddonLoops() : null;
  return enabled ? loops : null;
}

let cnn: NativeCnnKernels | null | undefined;

/** The native convolution and pooling kernels (native/conv.c, native/pool.c) when the native backend is
 *  active and its loops enabled (setNativeLoops), else null; check convAvailable before the convolutions. */
export function nativeCnnKernels(): NativeCnnKernels | null {
  if (cnn === undefined) cnn = gemmBackend() === "native" ? nativeAddonCnn() : null;
  return enabled ? cnn : null;
}

/** Turns the native elementwise loops (and the convolution and pooling kernels, and under the wasm backend
 *  its WebAssembly loops: wasm-loops.ts) off (or back on) for this process and returns the previous
 *  setting: tests and benchmarks use it to run the TypeScript loops on the same inputs. */
export function setNativeLoops(on: boolean): boolean {
  const previous = enabled;
  enabled = on;
  return previous;
}

/** Whether the compiled loops (native, or WebAssembly under the wasm backend) are on: setNativeLoops. */
export function nativeLoopsEnabled(): boolean {
  return enabled;
}

/** True when a, b (and out) are one array type, as the native loops require. */
export function sameArrayType(a: FloatArray, b: FloatArray, out: FloatArray): boolean {
  const f32 = a instanceof Float32Array;
  return f32 === (b instanceof Float32Array) && f32 === (out instanceof Float32Array);
}
