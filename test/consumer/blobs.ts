/** Two Gaussian blobs in the plane, centred at x = -2 and x = 2 (class 0 and 1, alternating), for the consumer programs. */
import { type Tensor, manualSeed, randn, tensor } from "@tapegrad/autograd";

export function blobs(n: number): { points: Tensor; targets: Tensor } {
  manualSeed(0);
  const points = randn([n, 2]);
  const labels = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    points.data[2 * i] += i % 2 === 0 ? -2 : 2;
  }
  return { points, targets: tensor(labels) };
}
