/**
 * One training step of issue 20's networks built from the kernels alone (no tensors, no tape): what the
 * conv2d / maxPool2d / linear ops will call, in the order a training step calls them, on preallocated
 * buffers, float32. Prints the median wall and CPU milliseconds per step, the median of each phase, and the
 * epoch they project to (steps per epoch × the median step).
 *   pnpm exec tsx bench/cnn-step.ts [--net=cnn|lenet] [--steps=N] [--threads=1] [--json]
 * cnn: conv(1→32, 3, pad 1)-ReLU-maxpool 2-conv(32→64, 3, pad 1)-ReLU-maxpool 2-Linear(3136→128)-ReLU-Linear(10),
 *   batch 128, 469 steps an epoch (60k images).
 * lenet: conv(1→6, 5, pad 2)-sigmoid-avgpool 2-conv(6→16, 5)-sigmoid-avgpool 2-Linear(400→120)-sigmoid-
 *   Linear(84)-sigmoid-Linear(10), batch 256, 235 steps an epoch.
 * The loss is cross-entropy (log-softmax and the softmax − one-hot gradient), the update plain SGD.
 * --threads=1 reruns itself with the native gemm on one thread and no helper split (as bench/conv-kernels.ts).
 * TAPEGRAD_BACKEND=js|wasm|native picks the gemm as everywhere else.
 */
import { parseArgs } from "node:util";
import {
  conv2dBackwardInput, conv2dBackwardWeight, conv2dForward, conv2dGeometry, conv2dWorkspaceSize, type Conv2dGeometry,
} from "../packages/autograd/src/kernels/conv.ts";
import {
  avgPool2dBackward, avgPool2dForward, maxPool2dBackward, maxPool2dForward, pool2dGeometry, type Pool2dGeometry,
} from "../packages/autograd/src/kernels/pool.ts";
import { axpy, fillRows, reluBackward, unary } from "../packages/autograd/src/kernels/elementwise.ts";
import { logSoftmaxAxis, sumAxis } from "../packages/autograd/src/kernels/reduce.ts";
import { gemm, gemmBackend, nativeGemmInfo, nativeGemmThreads } from "../packages/autograd/src/kernels/gemm.ts";
import { filledArray } from "./measure.ts";

const { values } = parseArgs({ options: {
  net: { type: "string", default: "cnn" }, steps: { type: "string", default: "40" }, threads: { type: "string" },
  json: { type: "boolean", default: false },
} });
if (values.net !== "cnn" && values.net !== "lenet") throw new Error(`cnn-step: --net takes cnn or lenet, got ${values.net}`);
if (values.threads !== undefined) {
  if (values.threads !== "1") throw new Error("cnn-step: --threads takes 1 (the default uses the native gemm's own policy)");
  if (process.env.TAPEGRAD_SPLIT_MIN_WORK !== "2147483647") {
    const { spawnSync } = await import("node:child_process");
    const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      stdio: "inherit", env: { ...process.env, TAPEGRAD_SPLIT_MIN_WORK: "2147483647", OPENBLAS_NUM_THREADS: "1" },
    });
    process.exit(r.status ?? 1);
  }
  nativeGemmThreads(1);
}
const steps = Number(values.steps);

const f32 = (n: number, seed: number, scale = 1): Float32Array => {
  const a = filledArray(new Float32Array(n), seed);
  if (scale !== 1) for (let i = 0; i < a.length; i++) a[i] *= scale;
  return a;
};
const size = (shape: readonly number[]): number => shape.reduce((p, v) => p * v, 1);

/** A parameter and its gradient. */
interface Param { value: Float32Array; grad: Float32Array }
const params: Param[] = [];
function param(n: number, fanIn: number, seed: number): Param {
  const p = { value: f32(n, seed, 1 / Math.sqrt(fanIn)), grad: new Float32Array(n) };
  params.push(p);
  return p;
}

// phase name → milliseconds of the current step
const phase = new Map<string, number>();
function timed(name: string, fn: () => void): void {
  const t0 = performance.now();
  fn();
  phase.set(name, (phase.get(name) ?? 0) + performance.now() - t0);
}

interface Layer { forward(): void; backward(): void }

/** conv2d + bias; its input gradient only where the input needs one. */
function conv(name: string, x: Float32Array, inShape: number[], outChannels: number, k: number, padding: number, inputGrad: Float32Array | null) {
  const g: Conv2dGeometry = conv2dGeometry(inShape, [outChannels, inShape[1], k, k], { padding });
  const w = param(outChannels * inShape[1] * k * k, inShape[1] * k * k, params.length + 1);
  const b = param(outChannels, inShape[1] * k * k, params.length + 1);
  const out = new Float32Array(g.batch * outChannels * g.outH * g.outW), gradOut = new Float32Array(out.length);
  const ws = new Float32Array(Math.max(conv2dWorkspaceSize(g, "forward"), conv2dWorkspaceSize(g, "backwardWeight"),
    inputGrad ? conv2dWorkspaceSize(g, "backwardInput") : 0));
  const layer: Layer = {
    forward: () => timed(`${name} forward`, () => conv2dForward(g, x, w.value, b.value, out, ws)),
    backward: () => {
      timed(`${name} weight+bias grad`, () => conv2dBackwardWeight(g, x, gradOut, w.grad, b.grad, ws));
      if (inputGrad) timed(`${name} input grad`, () => conv2dBackwardInput(g, gradOut, w.value, inputGrad, ws));
    },
  };
  return { layer, out, gradOut, shape: [g.batch, outChannels, g.outH, g.outW] };
}

/** An elementwise activation (relu or sigmoid) in place of nothing: out = f(x), gradX = f'(x)·gradOut. */
function activation(name: string, kind: "relu" | "sigmoid", x: Float32Array, gradX: Float32Array) {
  const out = new Float32Array(x.length), gradOut = new Float32Array(x.length);
  const layer: Layer = {
    forward: () => timed(`${name} forward`, () => unary(kind, x, out)),
    backward: () => timed(`${name} backward`, () => {
      if (kind === "relu") reluBackward(gradOut, x, gradX);
      else for (let i = 0; i < out.length; i++) { const s = out[i]; gradX[i] = gradOut[i] * s * (1 - s); }
    }),
  };
  return { layer, out, gradOut };
}

function pool(name: string, kind: "max" | "avg", x: Float32Array, shape: number[], gradX: Float32Array) {
  const p: Pool2dGeometry = pool2dGeometry(kind === "max" ? "maxPool2d" : "avgPool2d", shape, { kernelSize: 2 });
  const n = p.batch * p.channels * p.outH * p.outW;
  const out = new Float32Array(n), gradOut = new Float32Array(n), indices = new Int32Array(n);
  const layer: Layer = kind === "max"
    ? { forward: () => timed(`${name} forward`, () => maxPool2dForward(p, x, out, indices)),
      backward: () => timed(`${name} backward`, () => maxPool2dBackward(p, gradOut, indices, gradX)) }
    : { forward: () => timed(`${name} forward`, () => avgPool2dForward(p, x, out)),
      backward: () => timed(`${name} backward`, () => avgPool2dBackward(p, gradOut, gradX)) };
  return { layer, out, gradOut, shape: [p.batch, p.channels, p.outH, p.outW] };
}

/** y = x Wᵀ + b over [batch, inFeatures]. */
function linear(name: string, x: Float32Array, batch: number, inF: number, outF: number, gradX: Float32Array | null) {
  const w = param(outF * inF, inF, params.length + 1), b = param(outF, inF, params.length + 1);
  const out = new Float32Array(batch * outF), gradOut = new Float32Array(batch * outF);
  const layer: Layer = {
    forward: () => timed(`${name} forward`, () => {
      fillRows(b.value, batch, outF, out);
      gemm(false, true, batch, outF, inF, x, 0, inF, w.value, 0, inF, out, 0, outF, 1);
    }),
    backward: () => timed(`${name} backward`, () => {
      gemm(true, false, outF, inF, batch, gradOut, 0, outF, x, 0, inF, w.grad, 0, inF, 0);
      sumAxis(gradOut, 1, batch, outF, b.grad);
      if (gradX) gemm(false, false, batch, inF, outF, gradOut, 0, outF, w.value, 0, inF, gradX, 0, inF, 0);
    }),
  };
  return { layer, out, gradOut };
}

/** Mean cross-entropy of logits [batch, classes]; writes its gradient (softmax − one-hot)/batch. */
function crossEntropy(logits: Float32Array, gradLogits: Float32Array, labels: Int32Array, batch: number, classes: number) {
  const logp = new Float32Array(logits.length);
  return {
    forward: () => timed("loss", () => logSoftmaxAxis(logits, batch, classes, 1, logp)),
    backward: () => timed("loss", () => {
      for (let i = 0; i < batch; i++) {
        for (let c = 0; c < classes; c++) gradLogits[i * classes + c] = (Math.exp(logp[i * classes + c]) - (labels[i] === c ? 1 : 0)) / batch;
      }
    }),
  };
}

/** The network's layers in forward order, its input and labels. */
function build(net: "cnn" | "lenet"): { layers: Layer[]; loss: Layer; input: Float32Array; stepsPerEpoch: number } {
  const layers: Layer[] = [];
  const batch = net === "cnn" ? 128 : 256;
  const input = f32(batch * 28 * 28, 99);
  const labels = Int32Array.from({ length: batch }, (_, i) => (i * 7) % 10);
  let x = input, shape = [batch, 1, 28, 28], gradX: Float32Array | null = null;
  const push = <T extends { layer: Layer; out: Float32Array; gradOut: Float32Array }>(l: T): T => {
    layers.push(l.layer); x = l.out; gradX = l.gradOut; return l;
  };
  const act = net === "cnn" ? "relu" : "sigmoid";
  const convs = net === "cnn" ? [[32, 3, 1], [64, 3, 1]] : [[6, 5, 2], [16, 5, 0]];
  convs.forEach(([channels, k, pad], i) => {
    const c = push(conv(`conv${i + 1}`, x, shape, channels, k, pad, gradX));
    shape = c.shape;
    push(activation(`${act}${i + 1}`, act, x, gradX!));
    const p = push(pool(`${net === "cnn" ? "maxpool" : "avgpool"}${i + 1}`, net === "cnn" ? "max" : "avg", x, shape, gradX!));
    shape = p.shape;
  });
  const widths = net === "cnn" ? [128, 10] : [120, 84, 10];
  let features = size(shape.slice(1));
  widths.forEach((outF, i) => {
    push(linear(`fc${i + 1}`, x, batch, features, outF, gradX));
    features = outF;
    if (i < widths.length - 1) push(activation(`${act}fc${i + 1}`, act, x, gradX!));
  });
  const loss = crossEntropy(x, gradX!, labels, batch, 10);
  return { layers, loss, input, stepsPerEpoch: Math.ceil(60000 / batch) };
}

const { layers, loss, stepsPerEpoch } = build(values.net);
const lr = 0.01;
function step(): void {
  for (const l of layers) l.forward();
  loss.forward();
  loss.backward();
  for (let i = layers.length - 1; i >= 0; i--) layers[i].backward();
  timed("sgd", () => { for (const p of params) axpy(-lr, p.grad, 0, p.value, 0, p.value.length); });
}

for (let i = 0; i < 5; i++) step(); // warm-up: compiles the loops, starts the helper thread
const wall: number[] = [], cpu: number[] = [];
const phases = new Map<string, number[]>();
for (let i = 0; i < steps; i++) {
  phase.clear();
  const c0 = process.cpuUsage(), t0 = performance.now();
  step();
  wall.push(performance.now() - t0);
  const c = process.cpuUsage(c0);
  cpu.push((c.user + c.system) / 1e3);
  for (const [name, ms] of phase) phases.set(name, [...(phases.get(name) ?? []), ms]);
}
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1];
const result = {
  net: values.net, backend: gemmBackend(), threads: values.threads ?? "default", steps,
  stepMs: median(wall), stepCpuMs: median(cpu), epochS: (median(wall) * stepsPerEpoch) / 1e3, stepsPerEpoch,
  phases: Object.fromEntries([...phases].map(([name, ms]) => [name, median(ms)])),
};
if (values.json) console.log(JSON.stringify(result, null, 1));
else {
  console.log(`${values.net} step, gemm backend ${gemmBackend()}${gemmBackend() === "native" ? ` (${nativeGemmInfo()})` : ""}, threads ${result.threads}`);
  for (const [name, ms] of Object.entries(result.phases)) console.log(`  ${name.padEnd(26)} ${ms.toFixed(2).padStart(8)} ms`);
  console.log(`step: ${result.stepMs.toFixed(1)} ms wall, ${result.stepCpuMs.toFixed(1)} ms cpu (median of ${steps}); `
    + `epoch of ${stepsPerEpoch} steps ≈ ${result.epochS.toFixed(1)} s`);
}
