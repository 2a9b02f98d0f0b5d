/**
 * Weight initialisation, as torch.nn.init: every function fills a tensor in place (no tape) from the seeded
 * generator (`manualSeed(0)` makes it reproducible) and returns it.
 */
import { defaultGenerator, ValueError, type Generator, type Tensor } from "@tapegrad/autograd";

export type Nonlinearity =
  | "linear" | "conv1d" | "conv2d" | "conv3d" | "sigmoid" | "tanh" | "relu" | "leaky_relu" | "leakyRelu" | "selu";

export type FanMode = "fanIn" | "fanOut" | "fan_in" | "fan_out";

export interface RandomInitOptions {
  generator?: Generator;
}

export interface KaimingOptions extends RandomInitOptions {
  /** Negative slope of the leaky ReLU that follows (used only with leaky_relu). Default 0. */
  a?: number;
  /** fanIn keeps the forward variance, fanOut the backward variance. Default fanIn. */
  mode?: FanMode;
  /** Default "leaky_relu", as in PyTorch. */
  nonlinearity?: Nonlinearity;
}

export interface XavierOptions extends RandomInitOptions {
  gain?: number;
}

/**
 * The recommended gain for a nonlinearity, as torch.nn.init.calculate_gain.
 * @example calculateGain("relu") // √2
 */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case "linear": case "conv1d": case "conv2d": case "conv3d": case "sigmoid":
      return 1;
    case "tanh":
      return 5 / 3;
    case "relu":
      return Math.SQRT2;
    case "leaky_relu": case "leakyRelu": {
      const slope = param ?? 0.01;
      if (!Number.isFinite(slope)) throw new ValueError(`calculateGain: negative slope ${slope} is not a valid number`);
      return Math.sqrt(2 / (1 + slope * slope));
    }
    case "selu":
      return 3 / 4;
    default:
      throw new ValueError(`calculateGain: unsupported nonlinearity ${JSON.stringify(nonlinearity)}`);
  }
}

/**
 * Fan-in and fan-out of a weight: [out, in, ...kernel] gives fanIn = in·k, fanOut = out·k (PyTorch's rule).
 * @example calculateFans(zeros([128, 784])) // { fanIn: 784, fanOut: 128 }
 */
export function calculateFans(t: Tensor): { fanIn: number; fanOut: number } {
  if (t.ndim < 2) {
    throw new ValueError(`init: fan in and fan out cannot be computed for a tensor with fewer than 2 dimensions (shape [${t.shape.join(", ")}])`);
  }
  let receptive = 1;
  for (let i = 2; i < t.ndim; i++) receptive *= t.shape[i];
  return { fanIn: t.shape[1] * receptive, fanOut: t.shape[0] * receptive };
}

function fanFor(op: string, t: Tensor, mode: FanMode): number {
  const { fanIn, fanOut } = calculateFans(t);
  if (mode === "fanIn" || mode === "fan_in") return fanIn;
  if (mode === "fanOut" || mode === "fan_out") return fanOut;
  throw new ValueError(`${op}: mode must be "fanIn" or "fanOut", got ${JSON.stringify(mode)}`);
}

/** Fills with U(a, b). */
export function uniform_(t: Tensor, a = 0, b = 1, options: RandomInitOptions = {}): Tensor {
  if (!(a <= b)) throw new ValueError(`uniform_: lower bound ${a} exceeds upper bound ${b}`);
  const gen = options.generator ?? defaultGenerator;
  const d = t.data;
  for (let i = 0; i < d.length; i++) d[i] = a + (b - a) * gen.uniform();
  return t.markModified();
}

/** Fills with N(mean, std²). */
export function normal_(t: Tensor, mean = 0, std = 1, options: RandomInitOptions = {}): Tensor {
  if (!(std >= 0)) throw new ValueError(`normal_: std must be non-negative, got ${std}`);
  const gen = options.generator ?? defaultGenerator;
  const d = t.data;
  for (let i = 0; i < d.length; i++) d[i] = mean + std * gen.normal();
  return t.markModified();
}

export function constant_(t: Tensor, value: number): Tensor {
  t.data.fill(value);
  return t.markModified();
}

export function zeros_(t: Tensor): Tensor {
  return constant_(t, 0);
}

export function ones_(t: Tensor): Tensor {
  return constant_(t, 1);
}

/** U(-bound, bound) with bound = gain·√(3 / fan); PyTorch's Linear default is `{ a: Math.sqrt(5) }`. */
export function kaimingUniform_(t: Tensor, options: KaimingOptions = {}): Tensor {
  const fan = fanFor("kaimingUniform_", t, options.mode ?? "fanIn");
  if (fan === 0) return t;
  const std = calculateGain(options.nonlinearity ?? "leaky_relu", options.a ?? 0) / Math.sqrt(fan);
  const bound = Math.sqrt(3) * std;
  return uniform_(t, -bound, bound, options);
}

/** N(0, std²) with std = gain / √fan. */
export function kaimingNormal_(t: Tensor, options: KaimingOptions = {}): Tensor {
  const fan = fanFor("kaimingNormal_", t, options.mode ?? "fanIn");
  if (fan === 0) return t;
  const std = calculateGain(options.nonlinearity ?? "leaky_relu", options.a ?? 0) / Math.sqrt(fan);
  return normal_(t, 0, std, options);
}

/** U(-bound, bound) with bound = gain·√(6 / (fanIn + fanOut)) (Glorot). */
export function xavierUniform_(t: Tensor, options: XavierOptions = {}): Tensor {
  const { fanIn, fanOut } = calculateFans(t);
  const std = (options.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut));
  const bound = Math.sqrt(3) * std;
  return uniform_(t, -bound, bound, options);
}

/** N(0, std²) with std = gain·√(2 / (fanIn + fanOut)). */
export function xavierNormal_(t: Tensor, options: XavierOptions = {}): Tensor {
  const { fanIn, fanOut } = calculateFans(t);
  return normal_(t, 0, (options.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut)), options);
}
