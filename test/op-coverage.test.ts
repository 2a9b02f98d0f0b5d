/**
 * Every op the tape can record has gradient properties: the coverage is derived from the ops the code
 * declares (each built-in op declares itself before it can record) and the tapes the op table's samples
 * actually build, forward and backward, not from a list of names.
 */
import { describe, expect, it } from "vitest";
import { declareOp, record, type Tensor } from "../packages/autograd/src/index.ts";
import { declaredOps } from "../packages/autograd/src/tape.ts";
import { opTable, uncoveredOps } from "../packages/autograd/src/testing.ts";
import { unaryInfo, type OpInfo } from "../packages/autograd/src/opinfo.ts";

describe("op coverage", () => {
  it("every declared op appears on the tape of some op-table sample (forward or createGraph backward)", () => {
    expect(declaredOps().length).toBeGreaterThan(25);
    expect(uncoveredOps()).toEqual([]);
  });

  it("an op that is recorded but has no table entry is reported, and its entry makes it covered", () => {
    const SOFTPLUS = declareOp("softplusForCoverageTest");
    const softplus = (x: Tensor): Tensor => {
      const y = x.exp().add(1).log();
      const out = y.detach();
      return record(SOFTPLUS, [x], out, (g) => [g.mul(x.sigmoid())]);
    };
    expect(uncoveredOps()).toEqual(["softplusForCoverageTest"]);
    const entry: OpInfo = unaryInfo("softplus", softplus);
    expect(uncoveredOps([...opTable, entry])).toEqual([]);
  });
});
