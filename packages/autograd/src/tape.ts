/**
 * Recording. Every differentiable op that runs while grad mode is on, with an input that requires grad,
 * records a Node: its inputs and how to turn the output's gradient into theirs. Node ids are the tape
 * order. Built-in ops declare their identity once with `declareOp`, so the declared ops are exactly the
 * ops the tape can hold (the op-coverage test checks that each has samples in the op table).
 */
import { captureStack, checkForward, checksum, isAnomalyEnabled } from "./anomaly.ts";
import { GraphError, ValueError, fmtShape } from "./errors.ts";
import type { FloatArray } from "./dtype.ts";
import type { Tensor } from "./tensor-class.ts";

/** Turns the output's gradient into the inputs' gradients; `node` gives access to its inputs and saved values. */
export type BackwardFn = (grad: Tensor, node: Node) => (Tensor | null | undefined)[];

/** A recorded op's identity: its name on the tape, in errors and in toDot. */
export interface OpId {
  readonly name: string;
  /** User code's backward (defineOp): the engine never recycles the gradients it sees. */
  readonly userBackward: boolean;
  /** Which values the backward reads: an in-place change to them after the forward pass is an error at
   *  backward. Ops whose backward needs only shapes (add, sum, reshape) save neither. */
  readonly savesInputs: boolean;
  readonly savesOutput: boolean;
}

/** What an op's backward reads (see OpId); both by default. */
export interface OpSaves {
  inputs?: boolean;
  output?: boolean;
}

const declared = new Map<string, OpId>();

/**
 * Declares a built-in op (once per name). Libraries built on tapegrad declare theirs the same way.
 * @example const SOFTPLUS = declareOp("softplus"); ... record(SOFTPLUS, [x], out, backward)
 */
export function declareOp(name: string, saves: OpSaves = {}): OpId {
  if (typeof name !== "string" || name.length === 0) throw new ValueError("declareOp: name must be a non-empty string");
  if (declared.has(name)) throw new ValueError(`declareOp: an op named ${JSON.stringify(name)} is already declared`);
  const op: OpId = { name, userBackward: false, savesInputs: saves.inputs ?? true, savesOutput: saves.output ?? true };
  declared.set(name, op);
  return op;
}

/** The names of every declared op, in declaration order. */
export function declaredOps(): string[] {
  return [...declared.keys()];
}

/** The identity of a defineOp op: not declared (names may repeat), and its backward is user code. */
export function userOp(name: string): OpId {
  return { name, userBackward: true, savesInputs: true, savesOutput: true };
}

let nextNodeId = 0;

/** One recorded op: its inputs and how to turn the output's gradient into the inputs' gradients. */
export class Node {
  readonly id = nextNodeId++;
  readonly op: string;
  readonly userBackward: boolean;
  readonly savesInputs: boolean;
  /** Where in user code the op was created; captured only under detectAnomaly. */
  stack: string | undefined;
  freed = false;
  /** Whatever the op keeps for its backward (released with the graph). */
  saved: unknown;
  /** A buffer that only this node's backward reads (max pooling's argmax indices or window offsets,
   *  sigmoidAvgPool2d's sigmoid output): the engine hands it to the buffer pool when it frees the graph. An op
   *  clears it when a recorded backward (createGraph) captures the buffer, which then lives on in that graph. */
  scratch: FloatArray | Int32Array | Uint8Array | null = null;
  /** The output, when the backward reads it (exp, tanh, sigmoid, logSoftmax). */
  output: Tensor | null = null;
  /** The sum of the inputs' and the output's versions when recorded: an in-place change since then makes
   *  the saved values stale (see checkVersions). */
  versions = 0;
  /** Under detectAnomaly: a checksum of the inputs' and the output's data, which catches writes into `.data`. */
  dataChecksum: number | undefined;

  constructor(
    op: OpId,
    public inputs: Tensor[],
    public backward: BackwardFn | null,
    readonly outShape: readonly number[],
  ) {
    this.op = op.name;
    this.userBackward = op.userBackward;
    this.savesInputs = op.savesInputs;
  }
}

// ---------------------------------------------------------------- grad mode

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Sets grad mode and returns the previous one (the engine turns it off for a plain backward). */
export function setGradEnabled(enabled: boolean): boolean {
  const prev = gradEnabled;
  gradEnabled = enabled;
  return prev;
}

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const prev = setGradEnabled(enabled);
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs `fn` without recording anything on the tape (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/** Runs `fn` with recording on, even inside noGrad (torch.enable_grad). */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

// ---------------------------------------------------------------- recording

/**
 * Records `out = op(inputs)` on the tape when grad mode is on and an input requires grad.
 * Returns `out`, now carrying its node.
 */
export function record(op: OpId, inputs: Tensor[], out: Tensor, backward: BackwardFn, saved?: unknown): Tensor {
  if (isAnomalyEnabled()) checkForward(op.name, out);
  if (!gradEnabled) return out;
  let any = false;
  for (const x of inputs) if (x.requiresGrad) { any = true; break; }
  if (!any) return out;
  const node = new Node(op, inputs, backward, out.shape);
  node.saved = saved;
  if (op.savesOutput) node.output = out;
  node.versions = savedVersions(node);
  if (isAnomalyEnabled()) {
    node.stack = captureStack();
    node.dataChecksum = checksum(savedTensors(node));
  }
  out.gradFn = node;
  out.requiresGrad = true;
  return out;
}

/**
 * Before a node's backward runs: the tensors it saved (its inputs and output) must not have been modified
 * in place since it was recorded (PyTorch's version counters); under detectAnomaly, their data must also
 * have the checksum it had, which catches writes straight into `.data`.
 */
export function checkVersions(node: Node): void {
  const changed = savedVersions(node) !== node.versions;
  if (!changed && (node.dataChecksum === undefined || checksum(savedTensors(node)) === node.dataChecksum)) return;
  const saved = node.savesInputs ? node.inputs.map((x, i) => `input ${i} ${fmtShape(x.shape)}`) : [];
  if (node.output) saved.push(`its output ${fmtShape(node.outShape)}`);
  throw new GraphError(
    `${node.op}: one of the tensors it saved for backward (${saved.join(", ")}) was modified in place ` +
      `${changed ? "(its version changed)" : "(its data changed: detectAnomaly's checksum)"} after the forward pass, so its gradient ` +
      "would be wrong; modify a clone() instead, or run the forward again after the change",
  );
}

/** The sum of the saved tensors' versions (versions only grow, so any change changes the sum). */
function savedVersions(node: Node): number {
  let versions = node.output ? node.output.version : 0;
  if (node.savesInputs) for (const x of node.inputs) versions += x.version;
  return versions;
}

function savedTensors(node: Node): Tensor[] {
  const saved = node.savesInputs ? [...node.inputs] : [];
  if (node.output) saved.push(node.output);
  return saved;
}
