/**
 * Functional layers and losses (torch.nn.functional). crossEntropy is one fused op: the forward keeps the
 * softmax, the backward is (softmax − onehot)·g in one pass.
 */
import {
  Tensor, IndexError, ShapeError, ValueError, fmtShape, isGradEnabled, logSoftmax as coreLogSoftmax, noGrad,
  record, declareOp, softmax as coreSoftmax, linear as coreLinear, dropout as coreDropout, type Generator, type DropoutOptions,
} from "@tapegrad/autograd";
import { expDouble } from "@tapegrad/autograd/kernels";

export type Reduction = "mean" | "sum" | "none";
/** Class labels: integer values in a Tensor (any float dtype), an Int32Array or a number[]. */
export type Labels = Tensor | Int32Array | readonly number[];

export interface LossOptions {
  reduction?: Reduction;
}

const fmt = fmtShape;

const CROSS_ENTROPY = declareOp("crossEntropy", { output: false });

/** softmax along `axis` (default last), stable for any logits. */
export function softmax(x: Tensor, axis = -1): Tensor {
  return coreSoftmax(x, axis);
}

/** log softmax along `axis` (default last), stable for any logits. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return coreLogSoftmax(x, axis);
}

export function relu(x: Tensor): Tensor {
  return x.relu();
}

export function tanh(x: Tensor): Tensor {
  return x.tanh();
}

export function sigmoid(x: Tensor): Tensor {
  return x.sigmoid();
}

/**
 * x @ weightᵀ + bias with weight [out, in] (PyTorch's layout); x may have any leading batch axes.
 * @example F.linear(x, w, b)
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return coreLinear(x, weight, bias);
}

/**
 * Zeroes each element with probability p in training and scales the rest by 1/(1-p); identity otherwise.
 * The mask comes from `generator` (default: the global one that manualSeed seeds).
 */
export function dropout(x: Tensor, p = 0.5, training = true, generator?: Generator | DropoutOptions): Tensor {
  return coreDropout(x, p, training, generator ?? {});
}

// The convolutional-network ops of @tapegrad/autograd, as torch.nn.functional has them.
export {
  conv2d, maxPool2d, avgPool2d, adaptiveAvgPool2d, batchNorm, layerNorm, pad,
  type Conv2dOptions, type Conv2dPadding, type MaxPool2dOptions, type AvgPool2dOptions, type AdaptiveSize,
  type BatchNormOptions, type LayerNormOptions,
} from "@tapegrad/autograd";

// ---------------------------------------------------------------- labels

/** The class axis (1, or 0 for a single 1-D sample) and the validated labels as an Int32Array. */
function readLabels(op: string, x: Tensor, labels: Labels): { axis: number; idx: Int32Array; rowShape: number[] } {
  if (x.ndim === 0) throw new ShapeError(`${op}: input must have a class axis, got a 0-d tensor`);
  const axis = x.ndim === 1 ? 0 : 1;
  const classes = x.shape[axis];
  const rowShape = x.shape.filter((_, i) => i !== axis);
  const count = rowShape.reduce((a, b) => a * b, 1);
  const values: ArrayLike<number> = labels instanceof Tensor ? labels.data : labels;
  if (values.length !== count) {
    const got = labels instanceof Tensor ? `labels of shape ${fmt(labels.shape)}` : `${values.length} labels`;
    throw new ShapeError(`${op}: ${got} for input of shape ${fmt(x.shape)}; expected ${count} labels (shape ${fmt(rowShape)})`);
  }
  const idx = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const v = values[i];
    if (!Number.isInteger(v)) throw new IndexError(`${op}: label ${v} at position ${i} is not an integer`);
    if (v < 0 || v >= classes) {
      throw new IndexError(`${op}: label ${v} at position ${i} is out of range [0, ${classes}) for input of shape ${fmt(x.shape)}`);
    }
    idx[i] = v;
  }
  return { axis, idx, rowShape };
}

function checkReduction(op: string, reduction: unknown): void {
  if (reduction !== "mean" && reduction !== "sum" && reduction !== "none") {
    throw new ValueError(`${op}: reduction must be "mean", "sum" or "none", got ${JSON.stringify(reduction)}`);
  }
}

function reduce(op: string, perSample: Tensor, reduction: Reduction): Tensor {
  checkReduction(op, reduction);
  return reduction === "none" ? perSample : reduction === "sum" ? perSample.sum() : perSample.mean();
}

function allocLike(x: Tensor, n: number): Float32Array | Float64Array {
  return x.dtype === "float64" ? new Float64Array(n) : new Float32Array(n);
}

// ---------------------------------------------------------------- losses

/**
 * Softmax cross-entropy of `logits` ([N, C], [N, C, ...] or [C]) against integer class labels, fused and
 * finite for logits of any size.
 * NOTE: the gradient is (softmax − onehot)·g, computed in one loop from the softmax kept by the forward;
 * under createGraph it is written with ops (exp(logSoftmax(x)) − onehot) so it can be differentiated again.
 * @example const loss = F.crossEntropy(model.forward(x), y); loss.backward();
 */
export function crossEntropy(logits: Tensor, labels: Labels, options: LossOptions = {}): Tensor {
  const reduction = options.reduction ?? "mean";
  checkReduction("crossEntropy", reduction);
  const { axis, idx, rowShape } = readLabels("crossEntropy", logits, labels);
  const classes = logits.shape[axis];
  const outer = logits.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = logits.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const count = idx.length;
  const logProbs = noGrad(() => coreLogSoftmax(logits, axis));
  const lp = logProbs.data;

  const out = new Tensor(allocLike(logits, reduction === "none" ? count : 1), reduction === "none" ? rowShape : []);
  let total = 0;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      const r = o * inner + j;
      const loss = -lp[(o * classes + idx[r]) * inner + j];
      if (reduction === "none") out.data[r] = loss;
      else total += loss;
    }
  }
  if (reduction === "sum") out.data[0] = total;
  if (reduction === "mean") out.data[0] = count === 0 ? NaN : total / count;
  const scale = reduction === "mean" ? 1 / count : 1;

  return record(CROSS_ENTROPY, [logits], out, (g) => {
    if (isGradEnabled()) {
      // createGraph: differentiable in logits (and in g)
      const onehot = new Tensor(allocLike(logits, logits.size), logits.shape);
      for (let r = 0; r < count; r++) {
        const o = Math.floor(r / inner), j = r % inner;
        onehot.data[(o * classes + idx[r]) * inner + j] = 1;
      }
      const gRow = reduction === "none" ? g.reshape(logits.shape.map((d, i) => (i === axis ? 1 : d))) : g;
      return [coreLogSoftmax(logits, axis).exp().sub(onehot).mul(scale === 1 ? gRow : gRow.mul(scale))];
    }
    const gx = new Tensor(allocLike(logits, logits.size), logits.shape);
    const gd = gx.data, gg = g.data;
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < inner; j++) {
        const r = o * inner + j;
        const s = (reduction === "none" ? gg[r] : gg[0]) * scale;
        for (let c = 0; c < classes; c++) {
          const k = (o * classes + c) * inner + j;
          // NOTE: the exp that softmax (exp of logSoftmax) uses, so this is exactly softmax − onehot
          gd[k] = (expDouble(lp[k]) - (c === idx[r] ? 1 : 0)) * s;
        }
      }
    }
    return [gx];
  });
}

/**
 * Negative log-likelihood of log-probabilities ([N, C] or [C]) at integer labels.
 * @example F.nllLoss(F.logSoftmax(logits), y) // equals F.crossEntropy(logits, y)
 */
export function nllLoss(logProbs: Tensor, labels: Labels, options: LossOptions = {}): Tensor {
  const { axis, idx } = readLabels("nllLoss", logProbs, labels);
  return reduce("nllLoss", logProbs.pick(idx, axis).neg(), options.reduction ?? "mean");
}

/** Mean squared error; `input` and `target` must have the same shape. */
export function mseLoss(input: Tensor, target: Tensor, options: LossOptions = {}): Tensor {
  if (input.shape.length !== target.shape.length || input.shape.some((d, i) => d !== target.shape[i])) {
    throw new ShapeError(`mseLoss: input ${fmt(input.shape)} and target ${fmt(target.shape)} must have the same shape`);
  }
  const d = input.sub(target);
  return reduce("mseLoss", d.mul(d), options.reduction ?? "mean");
}

/** Fraction of rows whose argmax equals the label, as a number in [0, 1]. @example F.accuracy(logits, y) */
export function accuracy(logits: Tensor, labels: Labels): number {
  const { axis, idx } = readLabels("accuracy", logits, labels);
  if (idx.length === 0) return NaN;
  const pred = logits.argmax(axis).data;
  let hits = 0;
  for (let i = 0; i < idx.length; i++) if (pred[i] === idx[i]) hits++;
  return hits / idx.length;
}
