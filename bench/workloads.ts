/** What `pnpm bench` measures. Every tool runs the same list; sizes shrink with --quick. */

export type DTypeName = "float32" | "float64";

interface WorkloadBase {
  id: string;
  title: string;
  warmup: number;
  minRuns: number;
  minTimeMs: number;
}

export interface MatmulWorkload extends WorkloadBase {
  kind: "matmul";
  m: number; n: number; k: number;
  transA: boolean; transB: boolean;
  dtype: DTypeName;
}

/**
 * Per-op overhead: one small op with gradient recording, `repeat` times per timed call; with `backward`,
 * y = a·b then y.backward() (forward + backward of one op, grads cleared each time).
 */
export interface TinyAddWorkload extends WorkloadBase {
  kind: "tinyAdd";
  size: number;
  repeat: number;
  backward?: boolean;
}

/** One training epoch of an MLP (or, with two layer sizes, softmax regression) with plain SGD. */
export interface EpochWorkload extends WorkloadBase {
  kind: "epoch";
  layers: number[];
  samples: number;
  batch: number;
  lr: number;
}

/**
 * One SGD training epoch of issue 20's convolutional networks on synthetic [samples, 1, 28, 28] data (as
 * bench/cnn-reference.py trains PyTorch's): `cnn` is conv(1→32, 3, pad 1)-ReLU-maxpool-conv(32→64, 3, pad 1)
 * -ReLU-maxpool-Linear(3136→128)-ReLU-Linear(10), `lenet` d2l's LeNet-5 with Xavier weights. `warmupSteps`
 * untimed steps come first (a whole warm-up epoch would double the time), then `minRuns` timed epochs.
 */
export interface CnnEpochWorkload extends WorkloadBase {
  kind: "cnnEpoch";
  network: "cnn" | "lenet";
  samples: number;
  batch: number;
  lr: number;
  warmupSteps: number;
}

export type Workload = MatmulWorkload | TinyAddWorkload | EpochWorkload | CnnEpochWorkload;

export function flopsOf(w: Workload): number | undefined {
  return w.kind === "matmul" ? 2 * w.m * w.n * w.k : undefined;
}

/** The epoch workloads that run in the bench's interleaved rounds. */
export function isEpoch(w: Workload): w is EpochWorkload | CnnEpochWorkload {
  return w.kind === "epoch" || w.kind === "cnnEpoch";
}

/** The workloads; the convolutional networks' epochs (minutes each) only with `cnn`. */
export function buildWorkloads(quick: boolean, options: { cnn?: boolean } = {}): Workload[] {
  const timed = { warmup: 2, minRuns: quick ? 3 : 7, minTimeMs: quick ? 100 : 400 };
  const list: Workload[] = [];
  const matmul = (title: string, m: number, n: number, k: number, transA = false, transB = false,
    dtype: DTypeName = "float32"): void => {
    const id = `matmul ${m}x${k}${transA ? "ᵀ" : ""} @ ${k}x${n}${transB ? "ᵀ" : ""} ${dtype}`;
    list.push({ id, title, kind: "matmul", m, n, k, transA, transB, dtype, ...timed });
  };
  for (const size of [64, 128, 256, 512, 1024]) matmul(`square ${size}`, size, size, size);
  matmul("square 256 float64", 256, 256, 256, false, false, "float64");
  for (const batch of [128, 32]) {
    matmul(`MLP b${batch} forward x@W1`, batch, 128, 784);
    matmul(`MLP b${batch} dW1 = xᵀ@g`, 784, 128, batch, true, false);
    matmul(`MLP b${batch} dX = g@W1ᵀ`, batch, 784, 128, false, true);
    matmul(`MLP b${batch} forward h@W2`, batch, 10, 128);
  }
  matmul("tiny 8x8", 8, 8, 8);
  list.push({ id: "tiny add [16] x1000", title: "tiny op: add of two [16] tensors with grad (per op)",
    kind: "tinyAdd", size: 16, repeat: 1000, ...timed });
  list.push({ id: "tiny mul fwd+bwd [1] x1000", title: "tiny op forward + backward: y = a·b on 1-element tensors, y.backward() (per op)",
    kind: "tinyAdd", size: 1, repeat: 1000, backward: true, ...timed });
  const samples = quick ? 6000 : 60000;
  // An epoch is hundreds of steps, long enough to warm a JIT up inside the first run.
  const epoch = { warmup: 0, minRuns: quick ? 1 : 3, minTimeMs: 0, samples, lr: 0.1 };
  for (const batch of [128, 32]) {
    list.push({ id: `MLP epoch b${batch}`, title: `MLP 784-128-10 epoch, ${samples}×784, batch ${batch}`,
      kind: "epoch", layers: [784, 128, 10], batch, ...epoch });
  }
  list.push({ id: "softmax regression epoch b256", title: `softmax regression 784-10 epoch, ${samples}×784, batch 256`,
    kind: "epoch", layers: [784, 10], batch: 256, ...epoch });
  if (options.cnn) {
    // one timed epoch per round after 20 warm-up steps, as bench/cnn-reference.py times PyTorch's
    const cnnEpoch = { warmup: 0, minRuns: 1, minTimeMs: 0, samples, warmupSteps: 20 };
    list.push({ id: "cnn epoch b128", title: `cnn (2 conv, 2 max-pool, 3136-128-10) SGD epoch, ${samples}×1×28×28, batch 128`,
      kind: "cnnEpoch", network: "cnn", batch: 128, lr: 0.05, ...cnnEpoch });
    list.push({ id: "LeNet epoch b256", title: `LeNet-5 (sigmoid, avg-pool) SGD epoch, ${samples}×1×28×28, batch 256`,
      kind: "cnnEpoch", network: "lenet", batch: 256, lr: 0.9, ...cnnEpoch });
  }
  return list;
}

/** The full bench's MLP epoch (layers, data, learning rate) at another batch size, for the one-process scripts. */
export function mlpEpochWorkload(batch: number): EpochWorkload {
  return { ...buildWorkloads(false).find((w) => w.id === "MLP epoch b128") as EpochWorkload, batch };
}
