/**
 * The consumer test's browser program: type-checked with lib DOM and no @types/node, bundled by esbuild for
 * --platform=browser (which fails on any node: import), and run in headless Chromium where there is one.
 * Uses only @tapegrad/autograd (and its kernels entry) and the @tapegrad/nn core. Writes its result into the page.
 */
import { gradcheck, noGrad, randn, tensor } from "@tapegrad/autograd";
import { gemmBackend } from "@tapegrad/autograd/kernels";
import { DataLoader, F, TensorDataset, data, deserialize, nn, optim, serialize } from "@tapegrad/nn";
import { blobs } from "./blobs.js";

function run(): Record<string, unknown> {
  const x = tensor([[1, 2], [3, 4]], { requiresGrad: true });
  x.matmul(x.transpose()).relu().sum().backward();

  const { points, targets } = blobs(256);
  const model = new nn.Sequential(new nn.Linear(2, 8), new nn.ReLU(), new nn.Linear(8, 2));
  const opt = new optim.Adam(model.parameters(), { lr: 0.05 });
  for (let epoch = 0; epoch < 10; epoch++) {
    for (const [xb, yb] of new DataLoader(new TensorDataset(points, targets), { batchSize: 32, shuffle: true, seed: epoch })) {
      const loss = F.crossEntropy(model.forward(xb), yb);
      opt.zeroGrad();
      loss.backward();
      opt.step();
    }
  }
  const accuracy = noGrad(() => F.accuracy(model.forward(points), targets));

  const a = randn([2, 3], { dtype: "float64", requiresGrad: true });
  const gradOk = gradcheck((p) => p.mul(p).sigmoid().sum(), [a]);
  const restored = deserialize(serialize(model.stateDict())).tensors["0.weight"];
  const idx = data.parseIdx(data.encodeIdx({ shape: [2, 2], data: new Uint8Array([1, 2, 3, 4]) }));
  return {
    backend: gemmBackend(),
    grad: x.grad?.toArray(),
    accuracy,
    gradOk,
    restoredShape: restored.shape,
    idx: { shape: idx.shape, data: Array.from(idx.data) },
  };
}

let result: Record<string, unknown>;
try {
  result = run();
} catch (error) {
  result = { error: String(error) };
}
document.body.textContent = `BROWSER ${JSON.stringify(result)}`;
