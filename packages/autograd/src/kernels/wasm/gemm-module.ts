import { axpyF32 } from "./loops-module.ts";
import { encodeModule, op, simdOp, valType, type FunctionDef, type ValType } from "./encoder.ts";

/**
 * The WebAssembly SIMD GEMM kernels, generated as bytecode. For each element type (f32 with f32x4
 * lanes, f64 with f64x2) the module exports:
 *
 * `gemmF32` / `gemmF64` (mStrips, nStrips, kc, a, aRow, aStrip, b, bRow, bStrip, c, ldc, accumulate):
 *   for every MR×NR tile of a block, C_tile += A_strip @ B_strip over a depth of kc (C_tile = A_strip @
 *   B_strip when accumulate is 0: C is then written without being read), where
 *   row p of A strip i (MR values) starts at a + i*aStrip + p*aRow, row p of B strip j (NR values)
 *   at b + j*bStrip + p*bRow, and the tile's top-left element of C at c + i*MR*ldc + j*NR*bytes.
 *   All strides are in bytes. Packed strips have aRow = MR*bytes; an operand whose MR (or NR)
 *   values per depth step are already contiguous in memory (Aᵀ, or B) is read in place with aRow
 *   equal to its row stride. The kernel has no edge cases: the caller pads C to whole tiles, and
 *   padding lanes of A or B (whatever they hold) only reach C's padding, which is discarded.
 *
 * `gemmF32Rows` / `gemmF64Rows` (the same, then aLane): A read in place from row-major m×k storage, row r of
 *   a strip at + r*aLane (aLane = lda*bytes, aRow = bytes, aStrip = MR*lda*bytes), so A is never packed.
 *
 * Packers `gather{F32,F64}x{NR}` (src, ld, strips, kc, dst), strides in bytes: write `strips` strips of NR
 *   values per depth step, [s][p][NR], from storage contiguous along the depth (Bᵀ), element by element.
 *   The other layouts (A m×k, Aᵀ k×m, B k×n) are read in place.
 */
export interface KernelShape {
  /** Rows of a tile. */
  mr: number;
  /** Columns of a tile (a whole number of vectors). */
  nr: number;
  bytes: number;
}

interface ElementType {
  suffix: string;
  bytes: number;
  lanes: number;
  add: number;
  mul: number;
  /** relaxed_madd: a * b + c */
  madd: number;
  splat: number;
  load: (offset: number) => number[];
  store: (offset: number) => number[];
}

const f32: ElementType = {
  suffix: "F32", bytes: 4, lanes: 4, add: simdOp.f32x4Add, mul: simdOp.f32x4Mul, madd: simdOp.f32x4RelaxedMadd, splat: simdOp.v128Load32Splat,
  load: (offset) => op.i32Load(2, offset), store: (offset) => op.i32Store(2, offset),
};
const f64: ElementType = {
  suffix: "F64", bytes: 8, lanes: 2, add: simdOp.f64x2Add, mul: simdOp.f64x2Mul, madd: simdOp.f64x2RelaxedMadd, splat: simdOp.v128Load64Splat,
  load: (offset) => op.i64Load(3, offset), store: (offset) => op.i64Store(3, offset),
};

/** Tile shapes: 4 rows × 2 vectors keeps 8 accumulators + 3 operands within x86-64's 16 vector registers,
 *  with room to spare: at 6 rows (15 registers) V8's register allocator spills. */
export const f32Kernel: KernelShape = { mr: 4, nr: 8, bytes: 4 };
export const f64Kernel: KernelShape = { mr: 4, nr: 4, bytes: 8 };

const set = (local: number, ...value: number[][]): number[] => [...value.flat(), ...op.localSet(local)];
const addTo = (local: number, amount: number[]): number[] => set(local, op.localGet(local), amount, op.i32Add());
/** Decrements `local` and branches to the enclosing loop while it is non-zero (a do-while). */
const countDown = (local: number): number[] => [
  ...op.localGet(local), ...op.i32Const(1), ...op.i32Sub(), ...op.localTee(local), ...op.brIf(0),
];
const i32s = (count: number): ValType[] => new Array<ValType>(count).fill(valType.i32);

/**
 * The block kernel. With `aRows`, A is read in place from its row-major storage (m×k, row stride lda):
 * the MR values of a depth step lie `aLane` bytes apart (an extra parameter) instead of side by side, so
 * A needs no packing. With `fma`, each depth step is one relaxed multiply-add per accumulator (fused, one
 * rounding, on hardware with FMA) instead of a multiply and an add; the order over the depth is the same.
 */
function blockKernel(t: ElementType, shape: KernelShape, aRows = false, fma = false): FunctionDef {
  const mr = shape.mr;
  const nv = shape.nr / t.lanes;
  const [mStrips, nStrips, kc, a, aRow, aStrip, b, bRow, bStrip, c, ldc, accumulate, aLane] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const params = aRows ? 13 : 12;
  const [jCount, iCount, bj, cj, ai, ci, ap, bp, p, cr, cStride] = Array.from({ length: 11 }, (_, i) => params + i);
  /** Locals holding r·aLane for rows r = 1..MR-1 (aRows only). */
  const laneOffset = (r: number): number => params + 11 + r - 1;
  const i32Locals = 11 + (aRows ? mr - 1 : 0);
  const firstVector = params + i32Locals;
  const acc = (r: number, v: number): number => firstVector + r * nv + v;
  const bv = (v: number): number => firstVector + mr * nv + v;
  const av = firstVector + mr * nv + nv;
  /** Never written: WebAssembly zero-initialises locals. */
  const zero = av + 1;
  const vectorLocals = mr * nv + nv + 2;

  const vecLoad = (offset: number): number[] => op.simd(simdOp.v128Load, ...op.memarg(4, offset));
  const vecStore = (offset: number): number[] => op.simd(simdOp.v128Store, ...op.memarg(4, offset));
  const tileRows = (each: (r: number) => number[]): number[] => {
    const code = set(cr, op.localGet(ci));
    for (let r = 0; r < mr; r++) {
      if (r > 0) code.push(...addTo(cr, op.localGet(ldc)));
      code.push(...each(r));
    }
    return code;
  };
  const loadTile = tileRows((r) => Array.from({ length: nv }, (_, v) =>
    [...op.localGet(cr), ...vecLoad(16 * v), ...op.localSet(acc(r, v))]).flat());
  const zeroTile = Array.from({ length: mr * nv }, (_, i) => [...op.localGet(zero), ...op.localSet(firstVector + i)]).flat();
  const storeTile = tileRows((r) => Array.from({ length: nv }, (_, v) =>
    [...op.localGet(cr), ...op.localGet(acc(r, v)), ...vecStore(16 * v)]).flat());

  const depthStep: number[] = [];
  for (let v = 0; v < nv; v++) depthStep.push(...op.localGet(bp), ...vecLoad(16 * v), ...op.localSet(bv(v)));
  for (let r = 0; r < mr; r++) {
    if (aRows) {
      depthStep.push(...op.localGet(ap), ...(r > 0 ? [...op.localGet(laneOffset(r)), ...op.i32Add()] : []),
        ...op.simd(t.splat, ...op.memarg(Math.log2(t.bytes), 0)), ...op.localSet(av));
    } else {
      depthStep.push(...op.localGet(ap), ...op.simd(t.splat, ...op.memarg(Math.log2(t.bytes), r * t.bytes)), ...op.localSet(av));
    }
    for (let v = 0; v < nv; v++) {
      depthStep.push(...(fma
        ? [...op.localGet(av), ...op.localGet(bv(v)), ...op.localGet(acc(r, v)), ...op.simd(t.madd)]
        : [...op.localGet(acc(r, v)), ...op.localGet(av), ...op.localGet(bv(v)), ...op.simd(t.mul), ...op.simd(t.add)]),
      ...op.localSet(acc(r, v)));
    }
  }

  const lanes: number[] = [];
  for (let r = 1; aRows && r < mr; r++) lanes.push(...set(laneOffset(r), op.localGet(aLane), op.i32Const(r), op.i32Mul()));
  const body = [
    ...lanes,
    ...set(cStride, op.localGet(ldc), op.i32Const(mr), op.i32Mul()),
    ...set(jCount, op.localGet(nStrips)),
    ...set(bj, op.localGet(b)),
    ...set(cj, op.localGet(c)),
    ...op.loop(),
    ...set(iCount, op.localGet(mStrips)),
    ...set(ai, op.localGet(a)),
    ...set(ci, op.localGet(cj)),
    ...op.loop(),
    ...op.localGet(accumulate), ...op.if(), ...loadTile, ...op.else(), ...zeroTile, ...op.end(),
    ...set(ap, op.localGet(ai)),
    ...set(bp, op.localGet(bj)),
    ...set(p, op.localGet(kc)),
    ...op.loop(),
    ...depthStep,
    ...addTo(ap, op.localGet(aRow)),
    ...addTo(bp, op.localGet(bRow)),
    ...countDown(p),
    ...op.end(),
    ...storeTile,
    ...addTo(ai, op.localGet(aStrip)),
    ...addTo(ci, op.localGet(cStride)),
    ...countDown(iCount),
    ...op.end(),
    ...addTo(bj, op.localGet(bStrip)),
    ...addTo(cj, op.i32Const(shape.nr * t.bytes)),
    ...countDown(jCount),
    ...op.end(),
  ];
  const locals = [...i32s(i32Locals), ...new Array<ValType>(vectorLocals).fill(valType.v128)];
  return { name: `gemm${t.suffix}${aRows ? "Rows" : ""}`, params: i32s(params), locals, body };
}

/**
 * Packer for Bᵀ (contiguous along the depth): gathers W storage rows per depth step, moving elements as
 * raw bits. dst[s][p][i] = src[(s*W + i)*ld + p].
 */
function gatherKernel(t: ElementType, w: number): FunctionDef {
  const [src, ld, strips, kc, dst] = [0, 1, 2, 3, 4];
  const [rowPtr, ptr, p, stripStride] = [5, 6, 7, 8];
  const rowOffset = (i: number): number => 9 + i - 1; // locals holding i*ld for i = 1..w-1
  const body: number[] = [];
  for (let i = 1; i < w; i++) body.push(...set(rowOffset(i), op.localGet(ld), op.i32Const(i), op.i32Mul()));
  body.push(
    ...set(stripStride, op.localGet(ld), op.i32Const(w), op.i32Mul()),
    ...set(rowPtr, op.localGet(src)),
    ...op.loop(),
    ...set(ptr, op.localGet(rowPtr)),
    ...set(p, op.localGet(kc)),
    ...op.loop(),
  );
  for (let i = 0; i < w; i++) {
    body.push(...op.localGet(dst), ...op.localGet(ptr));
    if (i > 0) body.push(...op.localGet(rowOffset(i)), ...op.i32Add());
    body.push(...t.load(0), ...t.store(i * t.bytes));
  }
  body.push(
    ...addTo(ptr, op.i32Const(t.bytes)),
    ...addTo(dst, op.i32Const(w * t.bytes)),
    ...countDown(p),
    ...op.end(),
    ...addTo(rowPtr, op.localGet(stripStride)),
    ...countDown(strips),
    ...op.end(),
  );
  return { name: `gather${t.suffix}x${w}`, params: i32s(5), locals: i32s(4 + w - 1), body };
}

export interface GemmModuleOptions {
  /** Import a shared memory of at most maxPages pages (env.memory) instead of exporting its own. */
  shared?: { maxPages: number };
  /** Block kernels with relaxed SIMD's fused multiply-add (the runtime must support relaxed SIMD). */
  fma?: boolean;
}

/** Bytes of the module exporting `memory`, the block kernels, the Bᵀ packers and loops-module.ts's axpy
 *  (for SGD steps on pinned arrays, split between the threads). */
export function gemmModuleBytes({ shared, fma = false }: GemmModuleOptions = {}): Uint8Array {
  const functions = [
    blockKernel(f32, f32Kernel, false, fma), blockKernel(f64, f64Kernel, false, fma),
    blockKernel(f32, f32Kernel, true, fma), blockKernel(f64, f64Kernel, true, fma),
    gatherKernel(f32, f32Kernel.nr), gatherKernel(f64, f64Kernel.nr), axpyF32(),
  ];
  return encodeModule(functions, 1, shared);
}

/** A module whose only function uses f32x4.relaxed_madd: it validates where the runtime has relaxed SIMD. */
export function relaxedSimdProbe(): Uint8Array {
  const body = [...op.localGet(0), ...op.localGet(0), ...op.localGet(0), ...op.simd(simdOp.f32x4RelaxedMadd), 0x1a /* drop */];
  return encodeModule([{ name: "probe", params: [], locals: [valType.v128], body }], 1);
}
