/**
 * Anomaly mode (torch.autograd.detect_anomaly): under `detectAnomaly`, every op's forward output and every
 * gradient backward computes is checked for NaN and infinity, and the first one throws an AnomalyError
 * naming the op and the line of user code that created it.
 */
import { AnomalyError, fmtShape } from "./errors.ts";
import type { Node } from "./tape.ts";
import type { Tensor } from "./tensor-class.ts";

let anomalyEnabled = false;

export function isAnomalyEnabled(): boolean {
  return anomalyEnabled;
}

/**
 * Runs `fn` with NaN/Inf checks on every op's forward output and every backward gradient: the first op
 * that produces one throws an AnomalyError naming the op and where in user code it was created.
 * @example detectAnomaly(() => loss.backward())
 */
export function detectAnomaly<T>(fn: () => T): T {
  const prev = anomalyEnabled;
  anomalyEnabled = true;
  try {
    return fn();
  } finally {
    anomalyEnabled = prev;
  }
}

/** A stack trace to blame later: taken only in anomaly mode. */
export function captureStack(): string | undefined {
  return anomalyEnabled ? new Error().stack : undefined;
}

function firstNonFinite(t: Tensor): number {
  const d = t.data;
  for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i])) return i;
  return -1;
}

/** A frame of tapegrad's own code: its packages' sources or builds, in the workspace or installed. */
const LIBRARY_FRAME = /[\\/](?:packages[\\/](?:autograd|nn)[\\/](?:src|dist)|@tapegrad[\\/](?:autograd|nn))[\\/]/;

/** The first frame of `stack` outside tapegrad and Node's internals: the user's line. */
export function userFrame(stack: string | undefined): string {
  if (!stack) return "";
  const lines = stack.split("\n").slice(1).map((l) => l.trim());
  const user = lines.find((l) => !LIBRARY_FRAME.test(l) && !l.includes("node:internal"));
  return user ? `\n  created ${user}` : "";
}

/** Under detectAnomaly, the node whose backward is running: a NaN/Inf made inside it is blamed on it. */
let backwardNode: Node | null = null;

/** Runs `node`'s backward so that a NaN or infinity made inside it is reported as that node's. */
export function runBlamed(node: Node, g: Tensor): (Tensor | null | undefined)[] {
  const outer = backwardNode;
  backwardNode = node;
  try {
    return node.backward!(g, node);
  } finally {
    backwardNode = outer;
  }
}

/** Anomaly check of an op's forward output (record calls it while detectAnomaly is on). */
export function checkForward(op: string, out: Tensor): void {
  const i = firstNonFinite(out);
  if (i < 0) return;
  if (backwardNode) {
    throw new AnomalyError(
      `${backwardNode.op}: backward produced ${out.data[i]} (in its ${op}) at flat index ${i} of a gradient of shape ${fmtShape(out.shape)}` +
        userFrame(backwardNode.stack),
    );
  }
  throw new AnomalyError(`${op}: forward produced ${out.data[i]} at flat index ${i} of output ${fmtShape(out.shape)}${userFrame(new Error().stack)}`);
}

/** Anomaly check of the gradient a node's backward returned for its input `i`. */
export function checkBackward(node: Node, i: number, g: Tensor, x: Tensor): void {
  const bad = firstNonFinite(g);
  if (bad < 0) return;
  throw new AnomalyError(
    `${node.op}: backward produced ${g.data[bad]} in the gradient of input ${i} ${fmtShape(x.shape)} at flat index ${bad}` + userFrame(node.stack),
  );
}

/** A checksum of the tensors' data (two weighted sums; NaN counted as a value of its own), to notice writes. */
export function checksum(tensors: readonly Tensor[]): number {
  let s = 0;
  for (const t of tensors) {
    const d = t.data;
    let a = 0, b = 0;
    for (let i = 0; i < d.length; i++) {
      const v = d[i] !== d[i] ? 1.2345678e9 : d[i];
      a += v;
      b += v * ((i % 977) + 1);
    }
    s = s * 31 + a + 1.61803 * b;
  }
  return s;
}
