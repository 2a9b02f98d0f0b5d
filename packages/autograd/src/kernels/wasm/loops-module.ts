import { encodeModule, op, type FunctionDef, type ValType } from "./encoder.ts";

/**
 * WebAssembly SIMD versions of the float32 elementwise loops a training step runs on large arrays, generated
 * as bytecode. They compute what the TypeScript loops of elementwise.ts compute, bit for bit:
 *
 * `axpyF32(alpha, x, y, pairs)`: y[i] = float(double(y[i]) + alpha * double(x[i])), two elements a step
 *   (the TypeScript loop's double arithmetic: promote, multiply, add, round to float once).
 * `reluF32(x, out, quads)`: out[i] = x[i] where x[i] > 0 or x[i] is NaN (its bits kept), else +0.
 * `reluBackwardF32(g, x, out, quads)`: out[i] = g[i] (its bits) unless x[i] <= 0, then +0.
 * `sumRowsF32(x, out, rows, rowBytes, blocks)`: out[c] = float(Σ_r double(x[r][c])) for the columns of
 *   `blocks` blocks of 16, each column's rows added in order from +0 in double (reduce.ts's sumAxis): eight
 *   f64x2 accumulators a block, rows `rowBytes` apart.
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
  /** Moves the high two float32 lanes down (i8x16.shuffle of bytes 8..15, twice). */
  highToLow: (): number[] => op.simd(0x0d, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15),
  /** The low halves of two vectors side by side (bytes 0..7 of the first, then 0..7 of the second). */
  lowHalves: (): number[] => op.simd(0x0d, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
};

const advance = (local: number, bytes: number): number[] => [
  ...op.localGet(local), ...op.i32Const(bytes), ...op.i32Add(), ...op.localSet(local),
];
/** Decrements `local` and branches to the enclosing loop while it is non-zero (a do-while). */
const countDown = (local: number): number[] => [
  ...op.localGet(local), ...op.i32Const(1), ...op.i32Sub(), ...op.localTee(local), ...op.brIf(0),
];

export function axpyF32(): FunctionDef {
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

function sumRowsF32(): FunctionDef {
  const [x, out, rows, rowBytes, blocks] = [0, 1, 2, 3, 4];
  const [ptr, r, v] = [5, 6, 7];
  const acc = (i: number): number => 8 + i;
  const zero = acc(8);
  const body: number[] = [...op.loop()];
  for (let i = 0; i < 8; i++) body.push(...op.localGet(zero), ...op.localSet(acc(i)));
  body.push(...op.localGet(x), ...op.localSet(ptr), ...op.localGet(rows), ...op.localSet(r), ...op.loop());
  for (let q = 0; q < 4; q++) {
    body.push(
      ...op.localGet(ptr), ...simd.load(16 * q), ...op.localSet(v),
      ...op.localGet(acc(2 * q)), ...op.localGet(v), ...simd.promoteLow(), ...simd.f64x2Add(), ...op.localSet(acc(2 * q)),
      ...op.localGet(acc(2 * q + 1)), ...op.localGet(v), ...op.localGet(v), ...simd.highToLow(), ...simd.promoteLow(),
      ...simd.f64x2Add(), ...op.localSet(acc(2 * q + 1)),
    );
  }
  body.push(
    ...op.localGet(ptr), ...op.localGet(rowBytes), ...op.i32Add(), ...op.localSet(ptr),
    ...countDown(r),
    ...op.end(),
  );
  for (let q = 0; q < 4; q++) {
    body.push(
      ...op.localGet(out),
      ...op.localGet(acc(2 * q)), ...simd.demoteZero(), ...op.localGet(acc(2 * q + 1)), ...simd.demoteZero(), ...simd.lowHalves(),
      ...simd.store(16 * q),
    );
  }
  body.push(...advance(x, 64), ...advance(out, 64), ...countDown(blocks), ...op.end());
  // the v128 local `zero` is never written: WebAssembly zero-initialises locals
  return { name: "sumRowsF32", params: [i32, i32, i32, i32, i32], locals: [i32, i32, v128, ...new Array<ValType>(9).fill(v128)], body };
}

/** Bytes of the module exporting `memory` (its own, not shared) and the loops. */
export function loopsModuleBytes(): Uint8Array {
  return encodeModule([axpyF32(), maskedF32("reluF32", false), maskedF32("reluBackwardF32", true), sumRowsF32()], 1);
}
