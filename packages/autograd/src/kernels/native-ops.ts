/**
 * The op codes of the native addon's elementwise loops: an op's code is its index in these lists.
 * native/opcodes.h declares the same names in the same order (test/native-opcodes.test.ts checks it).
 */
export const NATIVE_BINARY_OPS = ["add", "sub", "mul", "div", "maximum", "minimum"] as const;
export const NATIVE_UNARY_OPS = ["neg", "relu", "abs", "sign", "step", "sqrt", "exp", "log", "sigmoid"] as const;

export type NativeBinaryOp = (typeof NATIVE_BINARY_OPS)[number];
export type NativeUnaryOp = (typeof NATIVE_UNARY_OPS)[number];

/** name → code, for the kernels' dispatch; ops missing from a list have no native loop. */
export function opCodes(names: readonly string[]): Partial<Record<string, number>> {
  const codes: Partial<Record<string, number>> = {};
  names.forEach((name, code) => (codes[name] = code));
  return codes;
}
