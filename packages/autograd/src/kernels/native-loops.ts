/**
 * Which elementwise loops go native. With the native backend (gemmBackend() === "native"), the large
 * contiguous loops of elementwise.ts and reduce.ts run as compiled C in the same addon as the BLAS gemm:
 * V8 takes 2–4 ns per element for out[i] = a[i] - b[i] on the bench machine, the C loop a fraction of
 * that. Results are bit-identical to the TypeScript loops (see native/elementwise.c), so a run gives the
 * same numbers with or without the addon. TAPEGRAD_BACKEND=wasm or js keeps every loop in TypeScript.
 */
import type { FloatArray } from "../dtype.ts";
import { gemmBackend } from "./gemm.ts";
import { nativeAddonLoops, type NativeLoops } from "./gemm-native.ts";

/**
 * Below this many elements the TypeScript loop is as fast: the Node-API call and its argument checks cost
 * about a microsecond. NOTE: measured on the bench machine, K.binary("sub") on float32 takes 1.5 µs in
 * TypeScript at 256 elements; at 1024, 4.7 µs in TypeScript against 2.0 µs native; at 4096, 19 against 4.2.
 */
export const NATIVE_MIN_ELEMENTS = 1024;

let loops: NativeLoops | null | undefined;
let enabled = true;

/** The native loops when the native backend is active and enabled, else null. */
export function nativeLoops(): NativeLoops | null {
  if (loops === undefined) loops = gemmBackend() === "native" ? nativeAddonLoops() : null;
  return enabled ? loops : null;
}

/** Turns the native elementwise loops off (or back on) for this process and returns the previous setting:
 *  tests use it to run the TypeScript loops on the same inputs. */
export function setNativeLoops(on: boolean): boolean {
  const previous = enabled;
  enabled = on;
  return previous;
}

/** True when a, b (and out) are one array type, as the native loops require. */
export function sameArrayType(a: FloatArray, b: FloatArray, out: FloatArray): boolean {
  const f32 = a instanceof Float32Array;
  return f32 === (b instanceof Float32Array) && f32 === (out instanceof Float32Array);
}
