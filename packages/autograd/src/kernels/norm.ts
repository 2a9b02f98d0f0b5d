/**
 * Normalisation kernels: batch norm over [N, C, inner] (inner = H·W for BatchNorm2d, L or 1 for
 * BatchNorm1d) and layer norm over the last `cols` elements of [rows, cols]. Fused: the statistics, the
 * normalisation and the affine map in as few passes as the maths allows; every sum in double. The caller
 * supplies every buffer.
 */
import type { FloatArray } from "../dtype.ts";

/**
 * Training-mode batch norm: per channel c, mean and biased variance over the N·inner elements,
 * out = (x − mean)·invstd·weight + bias with invstd = 1/√(var + eps). Saves mean and invstd (for the
 * backward) and, where batchVar is given, the biased variance (the op layer turns it into the unbiased
 * running estimate: var·M/(M − 1)). weight and bias null mean 1 and 0.
 * NOTE: one pass of sums shifted by each channel's first element (Σ(x − k), Σ(x − k)²): without the
 * shift, Σx² − M·mean² cancels catastrophically when |mean| ≫ std.
 */
export function batchNormForwardTraining(x: FloatArray, batch: number, channels: number, inner: number,
  weight: FloatArray | null, bias: FloatArray | null, eps: number, out: FloatArray,
  saveMean: FloatArray, saveInvstd: FloatArray, batchVar: FloatArray | null): void {
  const count = batch * inner;
  const stride = channels * inner;
  for (let c = 0; c < channels; c++) {
    if (count === 0) { saveMean[c] = NaN; saveInvstd[c] = NaN; if (batchVar) batchVar[c] = NaN; continue; }
    const k = x[c * inner];
    let s = 0, ss = 0;
    for (let n = 0; n < batch; n++) {
      const base = n * stride + c * inner;
      for (let i = 0; i < inner; i++) { const d = x[base + i] - k; s += d; ss += d * d; }
    }
    const meanShift = s / count;
    const variance = Math.max(0, ss / count - meanShift * meanShift);
    const mean = k + meanShift;
    const invstd = 1 / Math.sqrt(variance + eps);
    saveMean[c] = mean;
    saveInvstd[c] = invstd;
    if (batchVar) batchVar[c] = variance;
    const scale = invstd * (weight ? weight[c] : 1), shift = bias ? bias[c] : 0;
    for (let n = 0; n < batch; n++) {
      const base = n * stride + c * inner;
      for (let i = 0; i < inner; i++) out[base + i] = (x[base + i] - mean) * scale + shift;
    }
  }
}

/** Eval-mode batch norm: out = (x − runningMean)/√(runningVar + eps)·weight + bias. */
export function batchNormForwardEval(x: FloatArray, batch: number, channels: number, inner: number,
  runningMean: FloatArray, runningVar: FloatArray, weight: FloatArray | null, bias: FloatArray | null,
  eps: number, out: FloatArray): void {
  const stride = channels * inner;
  for (let c = 0; c < channels; c++) {
    const mean = runningMean[c];
    const scale = (weight ? weight[c] : 1) / Math.sqrt(runningVar[c] + eps), shift = bias ? bias[c] : 0;
    for (let n = 0; n < batch; n++) {
      const base = n * stride + c * inner;
      for (let i = 0; i < inner; i++) out[base + i] = (x[base + i] - mean) * scale + shift;
    }
  }
}

/**
 * The running statistics' update after a training-mode forward over `count` elements per channel (PyTorch's
 * rule): running = (1 − momentum)·running + momentum·batch, with the batch variance made unbiased
 * (·count/(count − 1)). For PyTorch's momentum=None (a cumulative average) pass 1/numBatchesTracked.
 */
export function batchNormUpdateRunning(runningMean: FloatArray, runningVar: FloatArray, mean: FloatArray,
  biasedVar: FloatArray, channels: number, count: number, momentum: number): void {
  const correction = count > 1 ? count / (count - 1) : Infinity;
  for (let c = 0; c < channels; c++) {
    runningMean[c] = (1 - momentum) * runningMean[c] + momentum * mean[c];
    runningVar[c] = (1 - momentum) * runningVar[c] + momentum * biasedVar[c] * correction;
  }
}

/**
 * Batch norm's backward, fused: with xhat = (x − mean)·invstd,
 * gradBias = Σ g, gradWeight = Σ g·xhat (sums over N and inner), and
 * training:  gradInput = weight·invstd·(g − Σg/M − xhat·Σ(g·xhat)/M)   (the batch statistics depend on x)
 * eval:      gradInput = weight·invstd·g                                (mean and invstd from the running stats)
 * Any of gradInput, gradWeight, gradBias may be null (not needed); gradWeight and gradBias are overwritten.
 */
export function batchNormBackward(gradOut: FloatArray, x: FloatArray, batch: number, channels: number, inner: number,
  weight: FloatArray | null, mean: FloatArray, invstd: FloatArray, training: boolean,
  gradInput: FloatArray | null, gradWeight: FloatArray | null, gradBias: FloatArray | null): void {
  const count = batch * inner;
  const stride = channels * inner;
  const needSums = gradWeight !== null || gradBias !== null || (training && gradInput !== null);
  for (let c = 0; c < channels; c++) {
    const m = mean[c], is = invstd[c];
    let sumG = 0, sumGX = 0; // Σ g and Σ g·(x − mean)
    if (needSums) {
      for (let n = 0; n < batch; n++) {
        const base = n * stride + c * inner;
        for (let i = 0; i < inner; i++) { const gv = gradOut[base + i]; sumG += gv; sumGX += gv * (x[base + i] - m); }
      }
    }
    if (gradBias) gradBias[c] = sumG;
    if (gradWeight) gradWeight[c] = sumGX * is;
    if (!gradInput) continue;
    const scale = (weight ? weight[c] : 1) * is;
    if (!training) {
      for (let n = 0; n < batch; n++) {
        const base = n * stride + c * inner;
        for (let i = 0; i < inner; i++) gradInput[base + i] = gradOut[base + i] * scale;
      }
      continue;
    }
    const meanG = sumG / count;
    const k = (sumGX * is * is) / count; // Σ(g·xhat)/M · invstd, so that xhat·that = (x − mean)·k
    for (let n = 0; n < batch; n++) {
      const base = n * stride + c * inner;
      for (let i = 0; i < inner; i++) gradInput[base + i] = (gradOut[base + i] - meanG - (x[base + i] - m) * k) * scale;
    }
  }
}

/**
 * Layer norm over the last `cols` elements of each of `rows` rows: out = (x − mean)·invstd·weight + bias,
 * weight and bias elementwise over the `cols` (null: 1 and 0). Saves each row's mean and invstd.
 */
export function layerNormForward(x: FloatArray, rows: number, cols: number, weight: FloatArray | null, bias: FloatArray | null,
  eps: number, out: FloatArray, saveMean: FloatArray, saveInvstd: FloatArray): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    if (cols === 0) { saveMean[r] = NaN; saveInvstd[r] = NaN; continue; }
    const k = x[base];
    let s = 0, ss = 0;
    for (let j = 0; j < cols; j++) { const d = x[base + j] - k; s += d; ss += d * d; }
    const meanShift = s / cols;
    const mean = k + meanShift;
    const invstd = 1 / Math.sqrt(Math.max(0, ss / cols - meanShift * meanShift) + eps);
    saveMean[r] = mean;
    saveInvstd[r] = invstd;
    if (weight && bias) for (let j = 0; j < cols; j++) out[base + j] = (x[base + j] - mean) * invstd * weight[j] + bias[j];
    else if (weight) for (let j = 0; j < cols; j++) out[base + j] = (x[base + j] - mean) * invstd * weight[j];
    else if (bias) for (let j = 0; j < cols; j++) out[base + j] = (x[base + j] - mean) * invstd + bias[j];
    else for (let j = 0; j < cols; j++) out[base + j] = (x[base + j] - mean) * invstd;
  }
}

/**
 * Layer norm's backward, fused per row: with xhat = (x − mean)·invstd and gw = g·weight,
 * gradInput = invstd·(gw − mean(gw) − xhat·mean(gw·xhat)); gradWeight = Σ_rows g·xhat, gradBias = Σ_rows g
 * (overwritten; summed in double column by column). Any output may be null.
 */
export function layerNormBackward(gradOut: FloatArray, x: FloatArray, rows: number, cols: number, weight: FloatArray | null,
  mean: FloatArray, invstd: FloatArray, gradInput: FloatArray | null, gradWeight: FloatArray | null, gradBias: FloatArray | null): void {
  if (gradInput) {
    for (let r = 0; r < rows; r++) {
      const base = r * cols, m = mean[r], is = invstd[r];
      let sumGW = 0, sumGWX = 0;
      for (let j = 0; j < cols; j++) {
        const gw = gradOut[base + j] * (weight ? weight[j] : 1);
        sumGW += gw;
        sumGWX += gw * (x[base + j] - m);
      }
      const meanGW = sumGW / cols;
      const k = (sumGWX * is * is) / cols;
      for (let j = 0; j < cols; j++) {
        const gw = gradOut[base + j] * (weight ? weight[j] : 1);
        gradInput[base + j] = (gw - meanGW - (x[base + j] - m) * k) * is;
      }
    }
  }
  if (gradWeight || gradBias) {
    for (let j = 0; j < cols; j++) {
      let sumG = 0, sumGX = 0;
      for (let r = 0; r < rows; r++) {
        const gv = gradOut[r * cols + j];
        sumG += gv;
        sumGX += gv * (x[r * cols + j] - mean[r]) * invstd[r];
      }
      if (gradBias) gradBias[j] = sumG;
      if (gradWeight) gradWeight[j] = sumGX;
    }
  }
}
