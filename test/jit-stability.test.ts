import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const root = fileURLToPath(new URL("..", import.meta.url));

/** Names of the functions tapegrad's own source declares (function f, const f = (...) =>, methods). */
function ownFunctionNames(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".ts")) {
        const text = readFileSync(path, "utf8");
        for (const m of text.matchAll(/function\s+([A-Za-z_$][\w$]*)|(?:const|let)\s+([A-Za-z_$][\w$]*)\s*=\s*(?:\([^)]*\)|[A-Za-z_$][\w$]*)\s*=>|^\s+(?:static\s+)?([A-Za-z_$][\w$]*)\s*\([^)]*\)\s*(?::[^{]*)?\{/gm)) {
          names.add(m[1] ?? m[2] ?? m[3]);
        }
      }
    }
  };
  for (const pkg of ["autograd", "nn"]) walk(join(root, "packages", pkg, "src"));
  return names;
}

// V8 only: other engines have no --trace-deopt
describe.skipIf(!process.versions.v8)("JIT stability of a training step", () => {
  it("a training loop's own functions never deoptimize for a wrong map (shapes and axis lists keep one elements kind)", () => {
    // NOTE: TurboFan's inlined Array.prototype.map makes holey arrays where the interpreter makes packed
    // ones; shape helpers that built shapes or axis lists with map handed optimized readers a second
    // kind, which deoptimized them ("wrong map") and sent them back to the compiler epoch after epoch
    const run = spawnSync(process.execPath, ["--trace-deopt", "--interrupt-budget=4096", "--import", "tsx",
      join(root, "test", "fixtures", "train-steps.ts"), "3000"], { encoding: "utf8", cwd: root, maxBuffer: 1 << 26 });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/trained 3000 steps, last loss [\d.]+/);
    const own = ownFunctionNames();
    const wrongMap = run.stdout.split("\n")
      .filter((line) => line.includes("deoptimizing") && line.includes("reason: wrong map"))
      .map((line) => /<JSFunction ([^ >]*)/.exec(line)?.[1] ?? "")
      .filter((name) => own.has(name));
    expect(wrongMap).toEqual([]);
  });
});
