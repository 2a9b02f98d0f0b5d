/** Floating-point element types. float32 is the default, as in PyTorch. */
export type DType = "float32" | "float64";
export type FloatArray = Float32Array | Float64Array;

export const arrayTypes = { float32: Float32Array, float64: Float64Array } as const;

export function isDType(x: unknown): x is DType {
  return x === "float32" || x === "float64";
}

export function dtypeOf(a: FloatArray): DType {
  return a instanceof Float64Array ? "float64" : "float32";
}

/** Bytes per element. */
export function itemSize(dtype: DType): number {
  return dtype === "float64" ? 8 : 4;
}

/** NOTE: mixing float32 and float64 promotes to float64, as in PyTorch and NumPy. */
export function promoteTypes(a: DType, b: DType): DType {
  return a === b ? a : "float64";
}
