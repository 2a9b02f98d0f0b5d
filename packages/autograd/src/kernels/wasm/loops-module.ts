import { encodeModule, op, type FunctionDef, type ValType } from "./encoder.ts";

/**
 * WebAssembly SIMD versions of the float32 elementwise loops a training step runs on large arrays, generated
 * as bytecode. They compute what the TypeScript loops of elementwise.ts compute, bit for bit:
 *
 * `axpyF32(alpha, x, y, pairs)`: y[i] = float(double(y[i]) + alpha * double(x[i])), two elements a step
 *   (the TypeScript loop's double arithmetic: promote, multiply, add, round to float once).
 * `reluF32(x, out, quads)`: out[i] = x[i] where x[i] > 0 or x[i] is NaN (its bits kept), else +0.
 * `reluBackwardF32(g, x, out, quads)`: out[i] = g[i] (its bits) unless x[i] <= 0, then +0.
 *
 * Addresses are in bytes; counts are of steps (two or four elements): the caller pads the last step, whose
 * extra lanes compute garbage in the module's own memory and are never copied out.
 */

const f64 = 0x7c as ValType;
const i32 = 0x7f as ValType;
const v128 = 0x7b as ValType;

const simd = {
  load: (offset: number): number[] => op.simd(0x00, ...op.memarg(4, offset)),
  store: (offset: number): number[] => op.simd(0x0b, ...op.memarg(4, offset)),
  load64Zero: (offset: number): number[] => op.simd(0x5d, ...op.memarg(3, offset)),
  store64Lane0: (offset: number): number[] => [...op.simd(0x5b, ...op.memarg(3, offset)), 0],
  f64x2Splat: (): number[] => op.simd(0x14),
  f32x4Le: (): number[] => op.simd(0x45),
  v128Not: (): number[] => op.simd(0x4d),
  v128And: (): number[] => op.simd(0x4e),
  f32x4Splat: (): number[] => op.simd(0x13),
  promoteLow: (): number[] => op.simd(0x5f),
  demoteZero: (): number[] => op.simd(0x5e),
  f64x2Add: (): number[] => op.simd(0xf0),
  f64x2Mul: (): number[] => op.simd(0xf2),
};

const advance = (local: number, bytes: number): number[] => [
  ...op.localGet(local), ...op.i32Const(bytes), ...op.i32Add(), ...op.localSet(local),
];
/** Decrements `local` and branches to the enclosing loop while it is non-zero (a do-while). */
const countDown = (local: number): number[] => [
  ...op.localGet(local), ...op.i32Const(1), ...op.i32Sub(), ...op.localTee(local), ...op.brIf(0),
];

function axpyF32(): FunctionDef {
  const [alpha, x, y, pairs, alphas] = [0, 1, 2, 3, 4];
  const body = [
    ...op.localGet(alpha), ...simd.f64x2Splat(), ...op.localSet(alphas),
    ...op.loop(),
    ...op.localGet(y),
    ...op.localGet(y), ...simd.load64Zero(0), ...simd.promoteLow(),
    ...op.localGet(alphas), ...op.localGet(x), ...simd.load64Zero(0), ...simd.promoteLow(), ...simd.f64x2Mul(),
    ...simd.f64x2Add(), ...simd.demoteZero(),
    ...simd.store64Lane0(0),
    ...advance(x, 8), ...advance(y, 8),
    ...countDown(pairs),
    ...op.end(),
  ];
  return { name: "axpyF32", params: [f64, i32, i32, i32], locals: [v128], body };
}

/** out = a where the mask of x (not x <= 0: positive or NaN) is set, else +0, four lanes a step. */
function maskedF32(name: string, withGradient: boolean): FunctionDef {
  const params = withGradient ? [i32, i32, i32, i32] : [i32, i32, i32];
  const [a, x, out, quads] = withGradient ? [0, 1, 2, 3] : [0, 0, 1, 2];
  const zeros = params.length;
  const advances = withGradient ? [...advance(a, 16), ...advance(x, 16)] : advance(x, 16);
  const body = [
    ...op.loop(),
    ...op.localGet(out),
    ...op.localGet(a), ...simd.load(0),
    ...op.localGet(x), ...simd.load(0), ...op.localGet(zeros), ...simd.f32x4Le(), ...simd.v128Not(),
    ...simd.v128And(),
    ...simd.store(0),
    ...advances, ...advance(out, 16),
    ...countDown(quads),
    ...op.end(),
  ];
  // the v128 local is never written: WebAssembly zero-initialises locals
  return { name, params, locals: [v128], body };
}

/** Bytes of the module exporting `memory` (its own, not shared) and the loops. */
export function loopsModuleBytes(): Uint8Array {
  return encodeModule([axpyF32(), maskedF32("reluF32", false), maskedF32("reluBackwardF32", true)], 1);
}
