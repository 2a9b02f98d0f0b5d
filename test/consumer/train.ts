/**
 * The consumer test's Node program: scripts/consumer-test.mjs compiles it with tsc (strict, nodenext) in a
 * project that installed the packed tarballs with npm, and runs the output with plain node. It trains through
 * the public API, checks gradients (gradcheck and a fast-check property), round-trips a checkpoint file and
 * loads Fashion-MNIST from the directory given as its argument. Prints one `CONSUMER {...}` line.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Tensor, gradcheck, noGrad, randn, tensor } from "@tapegrad/autograd";
import { gemmBackend } from "@tapegrad/autograd/kernels";
import { arbitraries } from "@tapegrad/autograd/testing";
import { DataLoader, F, TensorDataset, deserialize, nn, optim, serialize, type ImageDataset } from "@tapegrad/nn";
import { fashionMnist, loadSync, saveSync, type DownloadProgress } from "@tapegrad/nn/node";
import fc from "fast-check";
import { blobs } from "./blobs.js";

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`consumer: ${what}`);
}

// The README's PyTorch-style example: d/dX sum(relu(X Xᵀ)) = 2 · (column sums of X) in every row.
const x = tensor([[1, 2], [3, 4]], { requiresGrad: true });
x.matmul(x.transpose()).relu().sum().backward();
check(JSON.stringify(x.grad?.toArray()) === "[[8,12],[8,12]]", `README gradient ${JSON.stringify(x.grad?.toArray())}`);

// A small MLP learns two Gaussian blobs.
const { points, targets } = blobs(512);
const model = new nn.Sequential(new nn.Linear(2, 16), new nn.ReLU(), new nn.Linear(16, 2));
const opt = new optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
const loader = new DataLoader(new TensorDataset(points, targets), { batchSize: 64, shuffle: true, seed: 0 });
let loss: Tensor | undefined;
for (let epoch = 0; epoch < 10; epoch++) {
  for (const [xb, yb] of loader) {
    loss = F.crossEntropy(model.forward(xb), yb);
    opt.zeroGrad();
    loss.backward();
    opt.step();
  }
}
const accuracy = noGrad(() => F.accuracy(model.forward(points), targets));
check(accuracy > 0.95, `blob accuracy ${accuracy}`);

// Gradients against central differences, directly and as a fast-check property.
const a = randn([3, 4], { dtype: "float64", requiresGrad: true });
const b = randn([4, 2], { dtype: "float64", requiresGrad: true });
check(gradcheck((p, q) => p.matmul(q).tanh().sum(), [a, b]), "gradcheck");
fc.assert(fc.property(arbitraries.tensor({ shape: [3] }), (t) => gradcheck((u) => u.exp().mul(u).sum(), [t])), { numRuns: 10 });

// Checkpoints: bytes (core) and files (node entry).
const dir = mkdtempSync(join(tmpdir(), "tapegrad-consumer-"));
try {
  const file = join(dir, "model.safetensors");
  saveSync(file, model.stateDict(), { epochs: "10" });
  const copy = new nn.Sequential(new nn.Linear(2, 16), new nn.ReLU(), new nn.Linear(16, 2));
  copy.loadStateDict(loadSync(file));
  const same = noGrad(() => copy.forward(points).sub(model.forward(points)).abs().max().item());
  check(same === 0, `reloaded model differs by ${same}`);
  const { metadata } = deserialize(serialize(model.stateDict(), { epochs: "10" }));
  check(metadata.epochs === "10", "serialize/deserialize metadata");
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// Fashion-MNIST from a directory (the repository's sample), through the Node entry.
const progress: DownloadProgress[] = [];
const test: ImageDataset = await fashionMnist({ split: "test", root: process.argv[2], download: false, onProgress: (p) => progress.push(p) });
let shapes = "";
for (const [images, targets] of new DataLoader(test, { batchSize: 64 })) {
  shapes = `${images.shape} ${targets.shape}`;
  break;
}
check(test.n === 1000 && shapes === "64,784 64" && progress.length === 0, `fashionMnist: ${test.n} images, first batch ${shapes}`);

console.log(`CONSUMER ${JSON.stringify({ loss: loss?.item(), accuracy, gemmBackend: gemmBackend(), images: test.n })}`);
