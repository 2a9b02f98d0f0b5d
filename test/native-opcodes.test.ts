/** The native loops' op codes are written once per language: the TypeScript list and the C enum must agree. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { NATIVE_BINARY_OPS, NATIVE_UNARY_OPS } from "../packages/autograd/src/kernels/native-ops.ts";

/** The enumerators of every `enum { ... }` in the header, lower-cased without their OP_ prefix. */
function cEnums(path: string): string[][] {
  const source = readFileSync(new URL(path, import.meta.url), "utf8");
  return [...source.matchAll(/enum\s*\{([^}]*)\}/g)].map((m) =>
    m[1].split(",").map((s) => s.trim()).filter(Boolean).map((s) => s.replace(/^OP_/, "").toLowerCase()));
}

describe("native op codes", () => {
  it("native/opcodes.h lists the binary and unary ops of kernels/native-ops.ts, in the same order", () => {
    const [binary, unary] = cEnums("../packages/autograd/native/opcodes.h");
    expect(binary).toEqual([...NATIVE_BINARY_OPS]);
    expect(unary).toEqual([...NATIVE_UNARY_OPS]);
  });

  it("no other C file declares op codes of its own", () => {
    expect(cEnums("../packages/autograd/native/elementwise.c").flat().filter((name) => NATIVE_UNARY_OPS.includes(name as never) || NATIVE_BINARY_OPS.includes(name as never))).toEqual([]);
  });
});
