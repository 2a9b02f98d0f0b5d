import { filledArray, measure, type Timing } from "../measure.ts";
import { heWeights, synthetic } from "../synthetic.ts";
import type { EpochWorkload, MatmulWorkload, TinyAddWorkload, Workload } from "../workloads.ts";
import type { Tool, ToolGroup } from "./types.ts";

type Tf = typeof import("@tensorflow/tfjs-core");
type Tensor2D = import("@tensorflow/tfjs-core").Tensor2D;

const INSTALL = "pnpm add -D -w @tensorflow/tfjs-core @tensorflow/tfjs-backend-cpu @tensorflow/tfjs-backend-wasm";
/** The pure-JS CPU backend runs at a fraction of a GFLOP/s: it is skipped beyond this many multiply-adds and for epochs. */
const CPU_MAX_WORK = 2 ** 27;

async function matmul(tf: Tf, w: MatmulWorkload): Promise<Timing> {
  const a = tf.tensor(filledArray(new Float32Array(w.m * w.k), 1), w.transA ? [w.k, w.m] : [w.m, w.k]);
  const b = tf.tensor(filledArray(new Float32Array(w.k * w.n), 2), w.transB ? [w.n, w.k] : [w.k, w.n]);
  const timing = await measure(() => {
    const c = tf.matMul(a, b, w.transA, w.transB);
    c.dataSync();
    c.dispose();
  }, w);
  a.dispose();
  b.dispose();
  return timing;
}

async function tinyAdd(tf: Tf, w: TinyAddWorkload): Promise<Timing | undefined> {
  if (w.backward) return undefined; // tfjs-core's Node bundle registers no gradients
  const a = tf.ones([w.size]);
  const b = tf.ones([w.size]);
  const timing = await measure(() => {
    for (let i = 0; i < w.repeat; i++) tf.add(a, b).dispose();
  }, w);
  return { medianMs: timing.medianMs / w.repeat, runs: timing.runs };
}

/**
 * One SGD epoch with a hand-written backward pass, as in the NumPy reference: tfjs-core's Node bundle
 * registers no gradients (they come with the full @tensorflow/tfjs package). Each batch becomes a tensor
 * from the data set's JavaScript array, as a TF.js data pipeline hands batches over.
 * NOTE: not tf.slice of one big data-set tensor: on the wasm backend a slice costs time proportional to the
 * whole tensor, which made an epoch over 60k×784 take minutes instead of seconds (bench/NOTES.md, "TF.js").
 */
async function epoch(tf: Tf, w: EpochWorkload): Promise<Timing> {
  const classes = w.layers[w.layers.length - 1];
  const data = synthetic(w.samples, w.layers[0], classes);
  const features = data.features;
  const params = w.layers.slice(1).map((fanOut, i) => ({
    weight: tf.variable(tf.tensor2d(heWeights(w.layers[i], fanOut, 10 + i), [w.layers[i], fanOut])),
    bias: tf.variable(tf.zeros([fanOut])),
  }));
  const run = (): void => {
    for (let start = 0; start < w.samples; start += w.batch) {
      const size = Math.min(w.batch, w.samples - start);
      tf.tidy(() => {
        const activations: Tensor2D[] = [tf.tensor2d(data.x.subarray(start * features, (start + size) * features), [size, features])];
        params.forEach(({ weight, bias }, i) => {
          const z: Tensor2D = tf.add(tf.matMul(activations[i], weight), bias);
          activations.push(i < params.length - 1 ? tf.relu(z) as Tensor2D : z);
        });
        const onehot = tf.oneHot(tf.tensor1d(data.y.subarray(start, start + size), "int32"), classes);
        // d(mean cross-entropy)/d(logits) = (softmax - onehot) / batch
        let grad: Tensor2D = tf.div(tf.sub(tf.softmax(activations[params.length]), onehot), size);
        for (let i = params.length - 1; i >= 0; i--) {
          const { weight, bias } = params[i];
          const gradWeight = tf.matMul(activations[i], grad, true, false);
          const gradBias = tf.sum(grad, 0);
          if (i > 0) grad = tf.mul(tf.matMul(grad, weight, false, true), tf.step(activations[i])) as Tensor2D;
          weight.assign(tf.sub(weight, tf.mul(gradWeight, w.lr)));
          bias.assign(tf.sub(bias, tf.mul(gradBias, w.lr)));
        }
      });
    }
  };
  // One warm-up and one timed epoch: TF.js's wasm backend takes seconds per epoch (its transposed
  // matmuls run at 2 GFLOP/s).
  const timing = await measure(run, { ...w, warmup: 1, minRuns: 1 });
  tf.dispose(params.flatMap((p) => [p.weight, p.bias]));
  return timing;
}

/** TF.js with its WebAssembly and pure-JS CPU backends, where the packages are installed. */
export async function tfjsTools(options: { epochs: boolean }): Promise<ToolGroup> {
  let tf: Tf;
  const log = console.log;
  try {
    console.log = () => {}; // tfjs-core greets Node users with an advert for tfjs-node on load
    tf = await import("@tensorflow/tfjs-core");
    await import("@tensorflow/tfjs-backend-cpu");
    await import("@tensorflow/tfjs-backend-wasm");
  } catch (error) {
    const reason = `not installed (${(error as Error).message.split("\n")[0]}); install with: ${INSTALL}`;
    return { tools: [], missing: [{ name: "tfjs-wasm", reason }, { name: "tfjs-cpu", reason }], notes: () => [] };
  } finally {
    console.log = log;
  }
  const tool = (backend: string): Tool => ({
    name: `tfjs-${backend}`,
    async run(w: Workload) {
      if (w.kind === "cnnEpoch") return undefined;
      if (w.kind === "epoch" && (backend === "cpu" || !options.epochs)) return undefined;
      if (backend === "cpu" && w.kind === "matmul" && w.m * w.n * w.k > CPU_MAX_WORK) return undefined;
      if (w.kind === "matmul" && w.dtype === "float64") return undefined; // TF.js has no float64
      if (!(await tf.setBackend(backend))) throw new Error(`TF.js backend ${backend} failed to initialise`);
      await tf.ready();
      if (w.kind === "matmul") return matmul(tf, w);
      if (w.kind === "tinyAdd") return tinyAdd(tf, w);
      return epoch(tf, w);
    },
  });
  return {
    tools: [tool("wasm"), tool("cpu")],
    missing: [],
    notes: () => [
      `TF.js ${tf.version_core}: cpu backend skipped above ${CPU_MAX_WORK} multiply-adds and for epochs (too slow)`,
      options.epochs
        ? "TF.js wasm epochs: one warm-up and one timed epoch in the bench process, each batch a new tensor from the data set's array"
        : "TF.js wasm epochs skipped (--no-tfjs-epochs)",
    ],
  };
}
