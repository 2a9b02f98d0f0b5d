/**
 * The convolution, pooling and normalisation kernels on the layers of issue 20's two networks, forward and
 * backward, float32: median wall and CPU milliseconds per call and GFLOP/s (useful multiply-adds × 2, no
 * padding or thrown-away columns counted). On a busy machine the CPU time (this process's user + system
 * time, all threads) is the steadier number; with one thread (`--threads=1`: the native gemm on one
 * thread, no helper split) it is comparable with bench/cnn-reference.py's "cpu" rows at 1 thread. Beside each convolution pass, "gemm only": the same products through
 * `gemm` alone on ready operands, the floor the kernel's copies add to.
 *   pnpm exec tsx bench/conv-kernels.ts [--chunk=1,2,4,8] [--filter=TEXT] [--threads=1] [--json]
 * --chunk times the rows and wide paths at each chunk size (images per gemm) instead of the built-in choice.
 * Where the native direct kernels take a layer (conv2dNative) and the native pooling loops run, each pass
 * also has a "portable" row: the same call with the native loops turned off (setNativeLoops(false)), so
 * the TypeScript paths on the native gemm, timed in the same minute. "min cpu" is the fastest call's CPU time,
 * the least disturbed by other processes.
 * TAPEGRAD_BACKEND=js|wasm|native picks the gemm as everywhere else.
 */
import { parseArgs } from "node:util";
import {
  conv2dBackwardBias, conv2dBackwardInput, conv2dBackwardInputPath, conv2dBackwardWeight, conv2dChunk, conv2dForward, conv2dGeometry, conv2dNative, conv2dPath,
  conv2dWorkspaceSize, setConv2dChunk, type Conv2dGeometry,
} from "../packages/autograd/src/kernels/conv.ts";
import {
  avgPool2dBackward, avgPool2dForward, maxPool2dBackward, maxPool2dForward, maxPoolWindowOffsets, pool2dGeometry,
} from "../packages/autograd/src/kernels/pool.ts";
import { batchNormBackward, batchNormForwardTraining } from "../packages/autograd/src/kernels/norm.ts";
import { gemm, gemmBackend, nativeGemmInfo, nativeGemmThreads } from "../packages/autograd/src/kernels/gemm.ts";
import { nativeCnnKernels, setNativeLoops } from "../packages/autograd/src/kernels/native-loops.ts";
import { filledArray, measure } from "./measure.ts";

const { values } = parseArgs({ options: {
  chunk: { type: "string" }, filter: { type: "string", default: "" }, json: { type: "boolean", default: false }, threads: { type: "string" },
} });
if (values.threads !== undefined) {
  if (values.threads !== "1") throw new Error("conv-kernels: --threads takes 1 (the default uses the native gemm's own policy)");
  if (process.env.TAPEGRAD_SPLIT_MIN_WORK !== "2147483647") {
    // the helper split is read once, when the addon loads: rerun this script with it turned off
    const { spawnSync } = await import("node:child_process");
    const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      stdio: "inherit", env: { ...process.env, TAPEGRAD_SPLIT_MIN_WORK: "2147483647", OPENBLAS_NUM_THREADS: "1" },
    });
    process.exit(r.status ?? 1);
  }
  nativeGemmThreads(1);
}
const chunks: (number | undefined)[] = values.chunk ? values.chunk.split(",").map(Number) : [undefined];
const timing = { warmup: 3, minRuns: 7, minTimeMs: 400 };

interface Row { layer: string; pass: string; ms: number; cpuMs: number; minCpuMs: number; gflops: number | null }
const rows: Row[] = [];

/** Median wall and CPU milliseconds per call (CPU: this process's user + system time, all its threads). */
async function time(layer: string, pass: string, flops: number | null, fn: () => void): Promise<void> {
  if (!`${layer} ${pass}`.includes(values.filter!)) return;
  const cpu: number[] = [];
  const { medianMs } = await measure(() => {
    const c0 = process.cpuUsage();
    fn();
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1e3);
  }, timing);
  cpu.sort((a, b) => a - b);
  const cpuMs = cpu[cpu.length >> 1], minCpuMs = cpu[0];
  const row = { layer, pass, ms: medianMs, cpuMs, minCpuMs, gflops: flops === null ? null : flops / medianMs / 1e6 };
  rows.push(row);
  if (!values.json) {
    console.log(`${layer.padEnd(38)} ${pass.padEnd(26)} ${medianMs.toFixed(2).padStart(8)} ms  cpu ${cpuMs.toFixed(2).padStart(7)} ms`
      + `  min cpu ${minCpuMs.toFixed(2).padStart(7)} ms` + (row.gflops === null ? "" : `  ${row.gflops.toFixed(1).padStart(6)} GFLOP/s`));
  }
}

/** Times fn with the native loops off too, where `native` says they would run. */
async function timeBoth(layer: string, pass: string, flops: number | null, native: boolean, fn: () => void): Promise<void> {
  await time(layer, pass, flops, fn);
  if (!native) return;
  const previous = setNativeLoops(false);
  try {
    await time(layer, "  portable", flops, fn);
  } finally {
    setNativeLoops(previous);
  }
}

const f32 = (n: number, seed: number): Float32Array => filledArray(new Float32Array(n), seed);

/** The products the kernel hands to gemm for this geometry (per its path and chunk), on ready operands of the same sizes. */
function gemmOnly(g: Conv2dGeometry, pass: "forward" | "backwardInput" | "backwardWeight"): () => void {
  const cg = g.inChannels / g.groups, og = g.outChannels / g.groups, kk = g.kernelH * g.kernelW;
  const path = pass === "backwardInput" ? conv2dBackwardInputPath(g) : conv2dPath(g);
  const nb = conv2dChunk(g, pass);
  let perImage: number;
  if (path === "wide") {
    const wp = (pass === "backwardInput" ? g.width : g.outW) + g.dilationW * (g.kernelW - 1);
    perImage = pass === "backwardInput" ? (g.height - 1) * wp + g.width : (g.outH - 1) * wp + g.outW;
  } else {
    perImage = pass === "backwardInput" && path === "rows" ? g.height * g.width : g.outH * g.outW;
  }
  const cols = nb * perImage;
  const [m, k] = pass === "backwardInput" && path !== "im2col" ? [cg, og * kk] : pass === "backwardInput" ? [cg * kk, og] : [og, cg * kk];
  const a = f32(m * k, 1), b = f32(k * cols, 2), c = f32(Math.max(m * cols, m * k), 3);
  const calls = Math.ceil(g.batch / nb) * g.groups;
  if (pass === "backwardWeight") return () => { for (let i = 0; i < calls; i++) gemm(false, true, m, k, cols, c, 0, cols, b, 0, cols, a, 0, k, 1); };
  return () => { for (let i = 0; i < calls; i++) gemm(false, false, m, cols, k, a, 0, k, b, 0, cols, c, 0, cols, 0); };
}

async function convLayer(name: string, input: number[], weight: number[], padding: number, inputGrad: boolean): Promise<void> {
  for (const chunk of chunks) {
    setConv2dChunk(chunk);
    const g = conv2dGeometry(input, weight, { padding });
    const native = conv2dNative(g);
    const label = `${name} ${native ? "native" : conv2dPath(g)}${chunk === undefined ? "" : ` chunk ${chunk}`}`;
    const x = f32(g.batch * g.inChannels * g.height * g.width, 4);
    const w = f32(weight.reduce((p, v) => p * v), 5);
    const bias = f32(g.outChannels, 6);
    const out = new Float32Array(g.batch * g.outChannels * g.outH * g.outW);
    const gy = f32(out.length, 7);
    const gx = new Float32Array(x.length), gw = new Float32Array(w.length), gb = new Float32Array(g.outChannels);
    const ws = new Float32Array(Math.max(conv2dWorkspaceSize(g, "forward"), conv2dWorkspaceSize(g, "backwardInput"), conv2dWorkspaceSize(g, "backwardWeight")));
    const flops = 2 * g.batch * g.outH * g.outW * g.outChannels * (g.inChannels / g.groups) * g.kernelH * g.kernelW;
    await timeBoth(label, "forward", flops, native, () => conv2dForward(g, x, w, bias, out, ws));
    await time(label, "  gemm only", flops, gemmOnly(g, "forward"));
    if (inputGrad) {
      await timeBoth(label, `backwardInput${native ? "" : ` (${conv2dBackwardInputPath(g)})`}`, flops, native, () => conv2dBackwardInput(g, gy, w, gx, ws));
      await time(label, "  gemm only", flops, gemmOnly(g, "backwardInput"));
    }
    await timeBoth(label, "backwardWeight+Bias", flops, native, () => conv2dBackwardWeight(g, x, gy, gw, gb, ws));
    await time(label, "  gemm only", flops, gemmOnly(g, "backwardWeight"));
    await time(label, "backwardBias", null, () => conv2dBackwardBias(gy, g.batch, g.outChannels, g.outH * g.outW, gb));
  }
  setConv2dChunk(undefined);
}

async function poolLayer(name: string, kind: "max" | "avg", input: number[], kernel: number): Promise<void> {
  const p = pool2dGeometry(kind === "max" ? "maxPool2d" : "avgPool2d", input, { kernelSize: kernel });
  const x = f32(input.reduce((a, v) => a * v), 8);
  const outSize = p.batch * p.channels * p.outH * p.outW;
  const out = new Float32Array(outSize), gy = f32(outSize, 9), gx = new Float32Array(x.length);
  const native = nativeCnnKernels() !== null;
  if (kind === "max") {
    const indices = maxPoolWindowOffsets(p) ? new Uint8Array(outSize) : new Int32Array(outSize); // as maxPool2d keeps them
    await timeBoth(name, "forward", null, native, () => maxPool2dForward(p, x, out, indices));
    await timeBoth(name, "backward", null, native, () => maxPool2dBackward(p, gy, indices, gx));
  } else {
    await timeBoth(name, "forward", null, native, () => avgPool2dForward(p, x, out));
    await timeBoth(name, "backward", null, native, () => avgPool2dBackward(p, gy, gx));
  }
}

async function batchNormLayer(name: string, input: number[]): Promise<void> {
  const [n, c, h, w] = input;
  const size = n * c * h * w, inner = h * w;
  const x = f32(size, 10), gamma = f32(c, 11), beta = f32(c, 12), gy = f32(size, 13);
  const out = new Float32Array(size), gx = new Float32Array(size);
  const mean = new Float32Array(c), invstd = new Float32Array(c), variance = new Float32Array(c);
  const gGamma = new Float32Array(c), gBeta = new Float32Array(c);
  await time(name, "forward (training)", null, () => batchNormForwardTraining(x, n, c, inner, gamma, beta, 1e-5, out, mean, invstd, variance));
  await time(name, "backward", null, () => batchNormBackward(gy, x, n, c, inner, gamma, mean, invstd, true, gx, gGamma, gBeta));
}

if (!values.json) console.log(`gemm backend: ${gemmBackend()}${gemmBackend() === "native" ? ` (${nativeGemmInfo()})` : ""}\n`);
// cnn (batch 128): conv 1→32 3×3 pad 1 on 28×28, relu, maxpool 2, conv 32→64 3×3 pad 1 on 14×14, relu, maxpool 2
await convLayer("cnn conv1 1→32 28×28 b128", [128, 1, 28, 28], [32, 1, 3, 3], 1, false);
await poolLayer("cnn maxpool1 32×28×28 b128", "max", [128, 32, 28, 28], 2);
await convLayer("cnn conv2 32→64 14×14 b128", [128, 32, 14, 14], [64, 32, 3, 3], 1, true);
await poolLayer("cnn maxpool2 64×14×14 b128", "max", [128, 64, 14, 14], 2);
await batchNormLayer("cnn batchnorm 32×28×28 b128", [128, 32, 28, 28]);
await batchNormLayer("cnn batchnorm 64×14×14 b128", [128, 64, 14, 14]);
// LeNet (batch 256): conv 6@5×5 pad 2, sigmoid, avgpool 2, conv 16@5×5, sigmoid, avgpool 2
await convLayer("lenet conv1 1→6 5×5 28×28 b256", [256, 1, 28, 28], [6, 1, 5, 5], 2, false);
await poolLayer("lenet avgpool1 6×28×28 b256", "avg", [256, 6, 28, 28], 2);
await convLayer("lenet conv2 6→16 5×5 14×14 b256", [256, 6, 14, 14], [16, 6, 5, 5], 0, true);
await poolLayer("lenet avgpool2 16×10×10 b256", "avg", [256, 16, 10, 10], 2);
if (values.json) console.log(JSON.stringify({ backend: gemmBackend(), threads: values.threads ?? "default", rows }, null, 1));
