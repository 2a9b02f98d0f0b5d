/**
 * Gradient properties generated from the op table: for every differentiable op, random shapes (rank 0–4),
 * broadcastable pairs, every axis and keepdims, repeated pick indices, inputs inside the op's domain and
 * away from its kinks; the analytic gradient must match central differences. Adding an op to the table
 * adds its test. Runs per op: TAPEGRAD_PROPERTY_RUNS (default 100).
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { gradcheck } from "../packages/autograd/src/index.ts";
import { arbitraries, opTable, propertyRuns } from "../packages/autograd/src/testing.ts";

const numRuns = propertyRuns();

describe("op table: first-order gradients match central differences", () => {
  it("the table's names are unique", () => {
    const names = opTable.map((o) => o.name);
    expect(new Set(names).size).toBe(names.length);
  });

  for (const info of opTable) {
    it(`${info.name}: gradcheck holds on random ${info.kind} samples`, () => {
      fc.assert(
        fc.property(arbitraries.opSample(info), ({ inputs, args }) => gradcheck((...xs) => info.call(xs, args), inputs, info.gradcheck)),
        { numRuns },
      );
    });
  }
});
