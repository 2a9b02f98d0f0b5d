/** Base class of every error tapegrad throws on bad input. */
export class TapegradError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Shapes that do not fit an op: broadcasting, matmul, reshape, gradients of the wrong shape. */
export class ShapeError extends TapegradError {}

/** An axis outside a tensor's rank. */
export class AxisError extends TapegradError {}

/** An index out of range or not an integer. */
export class IndexError extends TapegradError {}

/** Misuse of the tape: backward through a freed graph, on a non-scalar without a gradient, ... */
export class GraphError extends TapegradError {}

/** NaN or Inf found where a check was asked for (detectAnomaly, gradcheck). */
export class AnomalyError extends TapegradError {}

/** Anything else wrong with an argument: a ragged nested array, an unknown dtype. */
export class ValueError extends TapegradError {}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}
