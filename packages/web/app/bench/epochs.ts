/**
 * One SGD epoch of the bench's MLP in the browser, for tapegrad and for TF.js: the same network, data, batch
 * and learning rate as `pnpm bench`'s "MLP epoch b128" (bench/workloads.ts), the same synthetic data and He
 * weights (bench/synthetic.ts), and the same training code as the Node bench's tools (bench/tools/tapegrad.ts's
 * epochTrainer, bench/tools/tfjs.ts's hand-written backward pass: tfjs-core registers no gradients).
 */
import * as ag from "@tapegrad/autograd";
import { optim } from "@tapegrad/nn";
import type * as Tf from "@tensorflow/tfjs-core";
import { heWeights, synthetic } from "../../../../bench/synthetic.ts";
import type { EpochWorkload } from "../../../../bench/workloads.ts";

export interface EpochRunner {
  /** Trains one epoch; returns the last batch's mean loss. */
  run(): number;
  dispose(): void;
  /** Whether the data set is in pinned memory (tapegrad). */
  pinned?: boolean;
  /** Milliseconds of the last epoch's phases (forward, backward, step), when the runner times them. */
  phases?: Record<string, number>;
}

/** `timed`: also sums the time of each step's forward, backward and optimizer phases into `phases`; `pin`
 *  (default true): the data set and the weights in pinned memory, as the Node bench's tapegrad epoch keeps
 *  them (`pinWeights: false` leaves the weights unpinned, for the pin-weights comparison). */
export function tapegradEpoch(w: EpochWorkload, { timed = false, pin = true, pinWeights = pin }: { timed?: boolean; pin?: boolean; pinWeights?: boolean } = {}): EpochRunner {
  const { x, y, features } = synthetic(w.samples, w.layers[0], w.layers[w.layers.length - 1]);
  const params = w.layers.slice(1).flatMap((fanOut, i) => [
    // weights pinned as the data set is (TF.js keeps both in its heap): their gradients and SGD steps then
    // stay in the kernels' memory, each half on the thread that uses it
    (pinWeights ? ag.tensor(heWeights(w.layers[i], fanOut, 10 + i), { shape: [w.layers[i], fanOut] }).transpose().pinMemory()
      : ag.tensor(heWeights(w.layers[i], fanOut, 10 + i), { shape: [w.layers[i], fanOut] }).transpose()).detach().requiresGrad_(),
    ag.tensor(new Float32Array(fanOut), { shape: [fanOut], requiresGrad: true }),
  ]);
  const optimizer = new optim.SGD(params, { lr: w.lr });
  const data = new ag.Tensor(x, [w.samples, features]);
  const inputs = pin ? data.pinMemory() : data;
  const phases = { forward: 0, backward: 0, step: 0 };
  const now = (): number => (timed ? performance.now() : 0);
  return {
    pinned: inputs.isPinned(),
    phases: timed ? phases : undefined,
    run() {
      let last = NaN;
      phases.forward = phases.backward = phases.step = 0;
      for (let start = 0; start < w.samples; start += w.batch) {
        const stop = Math.min(w.samples, start + w.batch);
        const t0 = now();
        // the hidden activations only the graph reaches go back to the pool with it, as nn.Sequential
        // declares its own (TF.js's loop below wraps its step in tf.tidy)
        let h = inputs.narrow(0, start, stop - start);
        for (let layer = 0; layer < params.length / 2; layer++) {
          if (layer > 0) ag.releaseWithGraph(h);
          h = ag.linear(h, params[2 * layer], params[2 * layer + 1]);
          if (layer < params.length / 2 - 1) { ag.releaseWithGraph(h); h = h.relu(); }
        }
        ag.releaseWithGraph(h);
        const loss = h.logSoftmax().pick(y.subarray(start, stop)).mean().neg();
        const t1 = now();
        loss.backward();
        const t2 = now();
        optimizer.step();
        optimizer.zeroGrad();
        if (timed) {
          const t3 = performance.now();
          phases.forward += t1 - t0;
          phases.backward += t2 - t1;
          phases.step += t3 - t2;
        }
        if (stop === w.samples) last = loss.item();
      }
      return last;
    },
    dispose() {},
  };
}

export function tfjsEpoch(tf: typeof Tf, w: EpochWorkload): EpochRunner {
  const classes = w.layers[w.layers.length - 1];
  const { x, y, features } = synthetic(w.samples, w.layers[0], classes);
  const params = w.layers.slice(1).map((fanOut, i) => ({
    weight: tf.variable(tf.tensor2d(heWeights(w.layers[i], fanOut, 10 + i), [w.layers[i], fanOut])),
    bias: tf.variable(tf.zeros([fanOut])),
  }));
  return {
    run() {
      let last = NaN;
      for (let start = 0; start < w.samples; start += w.batch) {
        const size = Math.min(w.batch, w.samples - start);
        const lastBatch = start + size === w.samples;
        tf.tidy(() => {
          const activations: Tf.Tensor2D[] = [tf.tensor2d(x.subarray(start * features, (start + size) * features), [size, features])];
          params.forEach(({ weight, bias }, i) => {
            const z: Tf.Tensor2D = tf.add(tf.matMul(activations[i], weight), bias);
            activations.push(i < params.length - 1 ? (tf.relu(z) as Tf.Tensor2D) : z);
          });
          const onehot = tf.oneHot(tf.tensor1d(y.subarray(start, start + size), "int32"), classes);
          const probabilities = tf.softmax(activations[params.length]);
          if (lastBatch) last = -tf.mean(tf.sum(tf.mul(onehot, tf.log(probabilities)), 1)).dataSync()[0];
          // d(mean cross-entropy)/d(logits) = (softmax - onehot) / batch
          let grad: Tf.Tensor2D = tf.div(tf.sub(probabilities, onehot), size);
          for (let i = params.length - 1; i >= 0; i--) {
            const { weight, bias } = params[i];
            const gradWeight = tf.matMul(activations[i], grad, true, false);
            const gradBias = tf.sum(grad, 0);
            if (i > 0) grad = tf.mul(tf.matMul(grad, weight, false, true), tf.step(activations[i])) as Tf.Tensor2D;
            weight.assign(tf.sub(weight, tf.mul(gradWeight, w.lr)));
            bias.assign(tf.sub(bias, tf.mul(gradBias, w.lr)));
          }
        });
      }
      // the updates are queued on the backend: reading one weight waits for them, as the Node bench's epoch ends
      params[0].weight.dataSync();
      return last;
    },
    dispose() {
      tf.dispose(params.flatMap((p) => [p.weight, p.bias]));
    },
  };
}
