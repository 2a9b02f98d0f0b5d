/**
 * A minimal WebAssembly binary encoder: just the sections, instructions and LEB128 numbers that the
 * GEMM micro-kernel module needs. Writing the bytes from TypeScript keeps the kernel readable source
 * in the repository, with no assembler dependency and no committed binary.
 */

export const valType = { i32: 0x7f, v128: 0x7b } as const;
export type ValType = (typeof valType)[keyof typeof valType];

/** Unsigned LEB128. */
export function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

/** Signed LEB128 for 32-bit constants. */
export function sleb(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    const done = (value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function utf8(name: string): number[] {
  const bytes = Array.from(new TextEncoder().encode(name));
  return [...uleb(bytes.length), ...bytes];
}

function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

/** Instruction builders; each returns its bytes so a function body is a flat concatenation. */
export const op = {
  block: (): number[] => [0x02, 0x40],
  loop: (): number[] => [0x03, 0x40],
  /** if / else of a block with no result. */
  if: (): number[] => [0x04, 0x40],
  else: (): number[] => [0x05],
  end: (): number[] => [0x0b],
  brIf: (depth: number): number[] => [0x0d, ...uleb(depth)],
  localGet: (i: number): number[] => [0x20, ...uleb(i)],
  localSet: (i: number): number[] => [0x21, ...uleb(i)],
  localTee: (i: number): number[] => [0x22, ...uleb(i)],
  i32Const: (v: number): number[] => [0x41, ...sleb(v)],
  i32Add: (): number[] => [0x6a],
  i32Sub: (): number[] => [0x6b],
  i32Mul: (): number[] => [0x6c],
  /** Plain 32/64-bit loads and stores move float bits without converting them. */
  i32Load: (alignLog2: number, offset: number): number[] => [0x28, ...uleb(alignLog2), ...uleb(offset)],
  i64Load: (alignLog2: number, offset: number): number[] => [0x29, ...uleb(alignLog2), ...uleb(offset)],
  i32Store: (alignLog2: number, offset: number): number[] => [0x36, ...uleb(alignLog2), ...uleb(offset)],
  i64Store: (alignLog2: number, offset: number): number[] => [0x37, ...uleb(alignLog2), ...uleb(offset)],
  /** SIMD instructions: prefix 0xfd, then the opcode as unsigned LEB128, then a memarg for memory ops. */
  simd: (opcode: number, ...immediates: number[]): number[] => [0xfd, ...uleb(opcode), ...immediates],
  memarg: (alignLog2: number, offset: number): number[] => [...uleb(alignLog2), ...uleb(offset)],
};

/** SIMD opcodes used by the kernel (WebAssembly SIMD, standardised in 2.0; relaxed SIMD, in 3.0). */
export const simdOp = {
  v128Load: 0x00,
  v128Load32Splat: 0x09,
  v128Load64Splat: 0x0a,
  v128Store: 0x0b,
  f32x4Add: 0xe4,
  f32x4Mul: 0xe6,
  f64x2Add: 0xf0,
  f64x2Mul: 0xf2,
  /** Relaxed SIMD: a * b + c, fused where the hardware has FMA (one rounding), else a multiply and an add. */
  f32x4RelaxedMadd: 0x105,
  f64x2RelaxedMadd: 0x107,
} as const;

export interface FunctionDef {
  name: string;
  params: ValType[];
  /** Extra locals after the parameters, in order. */
  locals: ValType[];
  body: number[];
}

/**
 * A module with one exported memory ("memory", minPages pages of 64 KiB) and the given exported void
 * functions. With `shared`, the memory is instead imported as env.memory, shared, of at most maxPages
 * pages (threads proposal), so instances on several threads can work on one memory.
 */
export function encodeModule(functions: FunctionDef[], minPages: number, shared?: { maxPages: number }): Uint8Array {
  const types = functions.map((f) => [0x60, ...vector(f.params.map((t) => [t])), ...uleb(0)]);
  const funcIndices = functions.map((_, i) => uleb(i));
  const memory = [[0x00, ...uleb(minPages)]];
  // limits flag 0x03: has a maximum, shared
  const memoryImport = shared ? [[...utf8("env"), ...utf8("memory"), 0x02, 0x03, ...uleb(minPages), ...uleb(shared.maxPages)]] : [];
  const exports = [
    [...utf8("memory"), 0x02, ...uleb(0)],
    ...functions.map((f, i) => [...utf8(f.name), 0x00, ...uleb(i)]),
  ];
  const codes = functions.map((f) => {
    // Locals are declared as runs of one type.
    const runs: number[][] = [];
    for (let i = 0; i < f.locals.length; ) {
      let j = i;
      while (j < f.locals.length && f.locals[j] === f.locals[i]) j++;
      runs.push([...uleb(j - i), f.locals[i]]);
      i = j;
    }
    const body = [...vector(runs), ...f.body, ...op.end()];
    return [...uleb(body.length), ...body];
  });
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector(types)),
    ...(shared ? section(2, vector(memoryImport)) : []),
    ...section(3, vector(funcIndices)),
    ...(shared ? [] : section(5, vector(memory))),
    ...section(7, vector(exports)),
    ...section(10, vector(codes)),
  ]);
}
