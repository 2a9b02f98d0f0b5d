// one-off: times each native addon function inside the framework step
import * as api from "/work/wt-cnn/packages/autograd/src/index.ts";
import { nativeAddonCnn } from "/work/wt-cnn/packages/autograd/src/kernels/gemm-native.ts";
import { cnnEpochTrainer } from "/work/wt-cnn/bench/tools/tapegrad.ts";
const network = process.argv[2] === "lenet" ? "lenet" : "cnn";
const addon = nativeAddonCnn() as unknown as Record<string, unknown>;
const stats = new Map<string, { n: number; t: number }>();
for (const k of Object.keys(addon)) {
  const f = addon[k];
  if (typeof f !== "function") continue;
  addon[k] = function (this: unknown, ...args: unknown[]) {
    const t0 = performance.now();
    const r = (f as Function).apply(this, args);
    const dt = performance.now() - t0;
    let key = k;
    if (k === "gemm" || k.startsWith("conv") || k.startsWith("maxPool") || k.startsWith("avgPool")) {
      const g = args.find((a) => a instanceof Int32Array) as Int32Array | undefined;
      if (k === "gemm") key += `${args[0] ? "T" : "N"}${args[1] ? "T" : "N"} ${args[2]}x${args[3]}x${args[4]}`;
      else if (g) key += " " + Array.from(g.slice(0, 6)).join(",");
    } else {
      const n = args.find((a) => typeof a === "number"); key += ` n=${n ?? (args.find((a)=>ArrayBuffer.isView(a)) as Float32Array)?.length}`;
    }
    const s = stats.get(key) ?? { n: 0, t: 0 };
    s.n++; s.t += dt; stats.set(key, s);
    return r;
  };
}
const batch = network === "cnn" ? 128 : 256, steps = 60;
const run = await cnnEpochTrainer(api, { id: "x", title: "x", kind: "cnnEpoch", network, batch, lr: network === "cnn" ? 0.05 : 0.9,
  samples: steps * batch, warmupSteps: 20, warmup: 0, minRuns: 1, minTimeMs: 0 } as never);
run(0, 20 * batch);
stats.clear();
const t0 = performance.now(); const c0 = process.cpuUsage();
for (let s = 0; s < steps; s++) run(s * batch, (s + 1) * batch);
const wall = (performance.now() - t0) / steps; const c = process.cpuUsage(c0);
let tot = 0;
const rows = [...stats].sort((a, b) => b[1].t - a[1].t);
for (const [k, s] of rows) { tot += s.t; console.log(`${(s.t / steps).toFixed(3).padStart(7)} ms/step  ${(s.n / steps).toFixed(1).padStart(4)}/step  ${k}`); }
console.log(`native total ${(tot / steps).toFixed(2)} ms, step wall ${wall.toFixed(2)} cpu ${((c.user + c.system) / 1000 / steps).toFixed(2)}`);
