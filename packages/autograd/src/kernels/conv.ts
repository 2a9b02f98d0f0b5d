/**
 * 2-D convolution kernels over NCHW typed arrays (float32 or float64): forward, the gradient of the input,
 * of the weight and of the bias. They know nothing of tensors or the tape; every buffer, the workspace
 * included, comes from the caller (conv2dWorkspaceSize says how large), so the hot path allocates nothing.
 *
 * Four paths, picked per geometry by conv2dPath:
 * - "pointwise": 1×1 kernel, stride 1, no padding. A gemm on each image as it lies in memory.
 * - "rows": stride 1 with output rows as wide as the input's (padding "same" along the width: 3×3 pad 1,
 *   5×5 pad 2). Row (c, i, j) of the im2col matrix is then one contiguous run of input plane c, shifted by
 *   (i − padH)·W + j − padW: one memcpy (copyWithin from the image staged in the workspace), then zeros
 *   in the few columns per output row whose read wrapped around into the neighbouring input row. The gemm
 *   writes each image's output straight into `out`. The input gradient is the same kind of convolution of
 *   the output gradient with the flipped, transposed kernel, so it takes the same path: no col2im scatter.
 * - "wide": any other stride-1 convolution. The input is copied into a zero-padded buffer and the output
 *   computed on its full width ("wide" rows of Wp = outW + dilation·(kW − 1) columns), where again every
 *   im2col row is one contiguous run; the wide result is unpacked into `out`. The gemm runs over a chunk of
 *   several images at once. The input gradient: the flipped-kernel convolution on the same kind of grid.
 * - "im2col": strided convolutions. Classic im2col (an element loop) per image, gemm, col2im.
 * The bias gradient is one gemm of the whole output gradient against a vector of ones.
 * With the native backend on a CPU with AVX-512, float32 stride-1 convolutions (every padding, dilation and
 * group count) take the addon's direct kernels instead (native/conv.c: no im2col matrix, masked loads of the
 * shifted input planes, both threads); conv2dNative says whether a geometry does.
 *
 * NOTE: the element loops of TypeScript copy about one element per nanosecond, a memcpy ten or more; a
 * 3×3 im2col writes nine times the input, so the stride-1 paths move data with copyWithin and keep the
 * element loops to the few wrapped columns (rows) or one pass over the input and the output (wide)
 * (bench/NOTES-conv.md, "Copies").
 */
import type { FloatArray } from "../dtype.ts";
import { ShapeError, ValueError, fmtShape } from "../errors.ts";
import { gemm, gemmBackend } from "./gemm.ts";
import type { NativeCnnKernels } from "./gemm-native.ts";
import { nativeCnnKernels } from "./native-loops.ts";

/** Everything a convolution kernel needs to know about the shapes, as plain numbers. */
export interface Conv2dGeometry {
  readonly batch: number;
  readonly inChannels: number;
  readonly height: number;
  readonly width: number;
  readonly outChannels: number;
  readonly kernelH: number;
  readonly kernelW: number;
  readonly strideH: number;
  readonly strideW: number;
  /** Zero rows above and columns left of the input. The padding below and right is whatever the output
   *  size implies (PyTorch's "same" pads one more on that side for even effective kernels). */
  readonly padH: number;
  readonly padW: number;
  readonly dilationH: number;
  readonly dilationW: number;
  readonly groups: number;
  readonly outH: number;
  readonly outW: number;
}

export type Pair = number | readonly [number, number];
export type Conv2dPadding = Pair | "same" | "valid";

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Conv2dPadding;
  dilation?: Pair;
  groups?: number;
}

function pair(op: string, name: string, v: Pair, min: number): [number, number] {
  const p: [number, number] = typeof v === "number" ? [v, v] : [v[0], v[1]];
  if ((typeof v !== "number" && v.length !== 2) || !p.every((x) => Number.isInteger(x) && x >= min)) {
    throw new ValueError(`${op}: ${name} must be an integer ≥ ${min} or a pair of them, got ${JSON.stringify(v)}`);
  }
  return p;
}

/**
 * The output length of a convolution along one axis: floor((size + padBefore + padAfter − dilation·(kernel − 1) − 1) / stride) + 1.
 * @example conv2dOutputSize(28, 3, 1, 1, 1, 1) // 28
 */
export function conv2dOutputSize(size: number, kernel: number, stride: number, padBefore: number, padAfter: number, dilation: number): number {
  return Math.floor((size + padBefore + padAfter - dilation * (kernel - 1) - 1) / stride) + 1;
}

/**
 * Checks an NCHW input shape and an [outChannels, inChannels/groups, kH, kW] weight shape against the
 * options (PyTorch's conv2d rules) and returns the geometry the kernels take. padding "same" needs stride 1
 * and puts the odd extra row or column below or right, as PyTorch does; "valid" is padding 0.
 * @example conv2dGeometry([128, 1, 28, 28], [32, 1, 3, 3], { padding: 1 }).outH // 28
 */
export function conv2dGeometry(inputShape: readonly number[], weightShape: readonly number[], options: Conv2dOptions = {}): Conv2dGeometry {
  const shapes = `input ${fmtShape(inputShape)}, weight ${fmtShape(weightShape)}`;
  if (inputShape.length !== 4 || weightShape.length !== 4) {
    throw new ShapeError(`conv2d: expected a 4-D input [N, C, H, W] and a 4-D weight [outChannels, inChannels/groups, kH, kW], got ${shapes}`);
  }
  const [batch, inChannels, height, width] = inputShape;
  const [outChannels, weightIn, kernelH, kernelW] = weightShape;
  const groups = options.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1) throw new ValueError(`conv2d: groups must be a positive integer, got ${groups}`);
  if (outChannels % groups !== 0) throw new ShapeError(`conv2d: outChannels ${outChannels} is not divisible by groups ${groups} (${shapes})`);
  if (weightIn * groups !== inChannels) {
    throw new ShapeError(`conv2d: given groups=${groups}, weight ${fmtShape(weightShape)} expects ${weightIn * groups} input channels, but the input ${fmtShape(inputShape)} has ${inChannels}`);
  }
  if (kernelH < 1 || kernelW < 1 || outChannels < 1) throw new ShapeError(`conv2d: the weight has an empty dimension (${shapes})`);
  const [strideH, strideW] = pair("conv2d", "stride", options.stride ?? 1, 1);
  const [dilationH, dilationW] = pair("conv2d", "dilation", options.dilation ?? 1, 1);
  const padding = options.padding ?? 0;
  let padH: number, padW: number, afterH: number, afterW: number;
  if (padding === "same") {
    if (strideH !== 1 || strideW !== 1) throw new ValueError(`conv2d: padding "same" is not supported for strided convolutions (stride [${strideH}, ${strideW}])`);
    const totalH = dilationH * (kernelH - 1), totalW = dilationW * (kernelW - 1);
    padH = totalH >> 1; afterH = totalH - padH;
    padW = totalW >> 1; afterW = totalW - padW;
  } else if (padding === "valid") {
    padH = padW = afterH = afterW = 0;
  } else {
    [padH, padW] = pair("conv2d", "padding", padding, 0);
    afterH = padH; afterW = padW;
  }
  const outH = conv2dOutputSize(height, kernelH, strideH, padH, afterH, dilationH);
  const outW = conv2dOutputSize(width, kernelW, strideW, padW, afterW, dilationW);
  if (outH < 1 || outW < 1) {
    throw new ShapeError(`conv2d: the padded input (${height + padH + afterH} × ${width + padW + afterW}) is smaller than the dilated kernel `
      + `(${dilationH * (kernelH - 1) + 1} × ${dilationW * (kernelW - 1) + 1}) (${shapes})`);
  }
  return { batch, inChannels, height, width, outChannels, kernelH, kernelW, strideH, strideW, padH, padW, dilationH, dilationW, groups, outH, outW };
}

export type Conv2dPath = "pointwise" | "rows" | "wide" | "im2col";

/** The addon's direct kernels where they take this geometry (stride 1, sizes whose indices fit 32 bits), else null. */
function nativeConv(g: Conv2dGeometry): NativeCnnKernels | null {
  if (g.strideH !== 1 || g.strideW !== 1) return null;
  const fits = g.inChannels * g.height * g.width < 2 ** 30 && g.outChannels * g.outH * g.outW < 2 ** 30
    && g.dilationH * g.kernelH * (g.width + g.outW) < 2 ** 29 && g.padH < 2 ** 29 && g.padW < 2 ** 29;
  if (!fits) return null;
  const kernels = nativeCnnKernels();
  return kernels !== null && kernels.convAvailable ? kernels : null;
}

/**
 * Whether float32 arrays of this geometry go to the native direct kernels (native/conv.c): with the native
 * backend, where the CPU has AVX-512, for stride-1 convolutions. Float64, and every other case, take
 * conv2dPath's path.
 */
export function conv2dNative(g: Conv2dGeometry): boolean {
  return nativeConv(g) !== null;
}

/** The geometry as native/conv.c reads it. */
function nativeGeometry(g: Conv2dGeometry): Int32Array {
  return Int32Array.of(g.batch, g.inChannels, g.height, g.width, g.outChannels, g.kernelH, g.kernelW, g.padH, g.padW,
    g.dilationH, g.dilationW, g.groups, g.outH, g.outW);
}

const NATIVE_PASS = { forward: 0, backwardInput: 1, backwardWeight: 2 } as const;

/** Which algorithm the kernels use for this geometry (see the file's comment). */
export function conv2dPath(g: Conv2dGeometry): Conv2dPath {
  if (g.strideH !== 1 || g.strideW !== 1) return "im2col";
  if (g.kernelH === 1 && g.kernelW === 1 && g.padH === 0 && g.padW === 0 && g.outH === g.height && g.outW === g.width) return "pointwise";
  return g.outW === g.width ? "rows" : "wide";
}

/**
 * The path conv2dBackwardInput takes: conv2dPath's, except "rows" for a stride-1 convolution whose output
 * rows are narrower than its input's (no "same" padding, LeNet's 5×5 valid): its input gradient is a
 * convolution whose output rows are as wide as the input's once the output gradient is staged with zero
 * columns on the right.
 */
export function conv2dBackwardInputPath(g: Conv2dGeometry): Conv2dPath {
  const path = conv2dPath(g);
  return path === "wide" && g.outW < g.width ? "rows" : path;
}

let chunkOverride: number | undefined;

/**
 * Sets how many images the rows and wide paths put in one gemm (undefined: the built-in choice) and returns the
 * previous setting. For tests (chunk boundaries) and bench/conv-kernels.ts (the choice's measurements).
 */
export function setConv2dChunk(images: number | undefined): number | undefined {
  if (images !== undefined && (!Number.isInteger(images) || images < 1)) throw new ValueError(`setConv2dChunk: expected a positive integer, got ${images}`);
  const previous = chunkOverride;
  chunkOverride = images;
  return previous;
}

/**
 * Images per chunk on the rows and wide paths: enough that a chunk's gemm has about CHUNK_COLUMNS columns,
 * never more than the batch. NOTE: one product per chunk instead of one per image also keeps the native
 * gemm's helper thread, which spins for a while after each split product, from slowing the copies between
 * products (bench/NOTES-conv.md, "Chunks").
 */
const CHUNK_COLUMNS = 1024;

function chunkImages(g: Conv2dGeometry, columnsPerImage: number): number {
  const chosen = chunkOverride ?? Math.max(1, Math.floor(CHUNK_COLUMNS / columnsPerImage));
  return Math.max(1, Math.min(chosen, g.batch));
}

/** Images per gemm that `pass` uses for geometry g: the chunk on the rows and wide paths, else 1. */
export function conv2dChunk(g: Conv2dGeometry, pass: Conv2dPass): number {
  const path = pass === "backwardInput" ? conv2dBackwardInputPath(g) : conv2dPath(g);
  if (path === "rows") return chunkImages(g, pass === "backwardInput" ? g.height * g.width : g.outH * g.outW);
  if (path === "wide") return chunkImages(g, (pass === "backwardInput" ? backwardGrid(g) : forwardGrid(g)).q);
  return 1;
}

/** The padded grid of the forward (and weight-gradient) wide path: planes of hp × wp, q wide columns per image. */
function forwardGrid(g: Conv2dGeometry): { hp: number; wp: number; q: number } {
  const hp = g.outH + g.dilationH * (g.kernelH - 1);
  const wp = g.outW + g.dilationW * (g.kernelW - 1);
  return { hp, wp, q: (g.outH - 1) * wp + g.outW };
}

/** The padded grid of the input-gradient wide path (a stride-1 convolution of the output gradient). */
function backwardGrid(g: Conv2dGeometry): { hp: number; wp: number; q: number } {
  const hp = g.height + g.dilationH * (g.kernelH - 1);
  const wp = g.width + g.dilationW * (g.kernelW - 1);
  return { hp, wp, q: (g.height - 1) * wp + g.width };
}

export type Conv2dPass = "forward" | "backwardInput" | "backwardWeight";

/** The staged image's margin on the rows path: the columns a shifted run may read before or after it. */
function rowsMargin(g: Conv2dGeometry): number {
  return Math.max(g.padW, g.dilationW * (g.kernelW - 1) - g.padW);
}

/**
 * The rows path builds the im2col matrix of a chunk in blocks of whole channels and accumulates one gemm
 * per block, so that a block (written, then read by the gemm) stays in cache: at most ROWS_BLOCK_ELEMENTS
 * elements (2 MB of float32, within the L3 cache) and MAX_GEMM_DEPTH rows (the native float32 tile
 * kernels' depth bound), split evenly (bench/NOTES-conv.md, "Depth split").
 */
const ROWS_BLOCK_ELEMENTS = 1 << 19;
const MAX_GEMM_DEPTH = 512;

function rowsBlockChannels(channels: number, kk: number, columns: number): number {
  const maxRows = Math.min(MAX_GEMM_DEPTH, Math.floor(ROWS_BLOCK_ELEMENTS / columns));
  const perBlock = Math.max(1, Math.floor(maxRows / kk));
  const blocks = Math.ceil(channels / perBlock);
  return Math.ceil(channels / blocks);
}

/** Elements of workspace (the input's array type) that `pass` needs for geometry g. */
export function conv2dWorkspaceSize(g: Conv2dGeometry, pass: Conv2dPass): number {
  const portable = portableWorkspaceSize(g, pass);
  const native = nativeConv(g);
  return native === null ? portable : Math.max(portable, native.convWorkspace(NATIVE_PASS[pass], nativeGeometry(g)));
}

/** The workspace of conv2dPath's paths. */
function portableWorkspaceSize(g: Conv2dGeometry, pass: Conv2dPass): number {
  const path = conv2dPath(g);
  const kk = g.kernelH * g.kernelW;
  const rows = g.inChannels * kk; // rows of the im2col matrix
  const l = g.outH * g.outW;
  // the bias gradient: a vector of ones and one sum per (image, channel)
  const biasPart = pass === "backwardWeight" ? l + g.batch * g.outChannels : 0;
  if (path === "pointwise") return biasPart;
  if (path === "im2col") return rows * l + biasPart;
  if (path === "rows" || (pass === "backwardInput" && conv2dBackwardInputPath(g) === "rows")) {
    const margin = rowsMargin(g), cg = g.inChannels / g.groups, og = g.outChannels / g.groups;
    // flipped weight (input gradient) | staged chunk | im2col block | the gemm's result (forward, input
    // gradient) or the staged output gradient (weight)
    if (pass === "backwardInput") {
      const hw = g.height * g.width, nb = chunkImages(g, hw);
      const stagedRows = g.outW !== g.width ? g.height + g.dilationH * (g.kernelH - 1) : g.outH;
      const staged = nb * g.outChannels * stagedRows * g.width + 2 * margin;
      return g.outChannels * cg * kk + staged + rowsBlockChannels(og, kk, nb * hw) * kk * nb * hw + (nb > 1 ? cg * nb * hw : 0);
    }
    const nb = chunkImages(g, l);
    const staged = nb * g.inChannels * g.height * g.width + 2 * margin;
    const block = rowsBlockChannels(cg, kk, nb * l) * kk * nb * l;
    if (pass === "forward") return staged + block + (nb > 1 ? og * nb * l : 0);
    return staged + block + (nb > 1 ? g.outChannels * nb * l : 0) + biasPart;
  }
  if (pass === "backwardInput") {
    const { hp, wp, q } = backwardGrid(g);
    const nb = chunkImages(g, q);
    return g.outChannels * (g.inChannels / g.groups) * kk + nb * (g.outChannels * hp * wp + g.outChannels * kk * q + g.inChannels * q);
  }
  const { hp, wp, q } = forwardGrid(g);
  const nb = chunkImages(g, q);
  return nb * (g.inChannels * hp * wp + rows * q + g.outChannels * q) + biasPart;
}

function checkBuffers(op: string, arrays: readonly (FloatArray | null)[], lengths: readonly number[], names: readonly string[]): void {
  const f32 = arrays[0] instanceof Float32Array;
  arrays.forEach((a, i) => {
    if (a === null) return;
    if ((a instanceof Float32Array) !== f32) throw new ValueError(`${op}: ${names[i]} is a ${a.constructor.name}, ${names[0]} a ${arrays[0]!.constructor.name}; all must be one type`);
    if (a.length < lengths[i]) throw new ValueError(`${op}: ${names[i]} has ${a.length} elements, needs ${lengths[i]}`);
  });
}

/**
 * Copies `planes` planes of hs × ws from src into the planes of hd × wd at dst (already zeroed), moved
 * down by `top` rows and right by `left` columns; negative moves crop.
 */
function placePlanes(src: FloatArray, srcOffset: number, planes: number, hs: number, ws: number,
  dst: FloatArray, dstOffset: number, hd: number, wd: number, top: number, left: number): void {
  const r0 = Math.max(0, -top), r1 = Math.min(hs, hd - top);
  const c0 = Math.max(0, -left), c1 = Math.min(ws, wd - left);
  if (r0 >= r1 || c0 >= c1) return;
  for (let p = 0; p < planes; p++) {
    let s = srcOffset + p * hs * ws + r0 * ws;
    let d = dstOffset + p * hd * wd + (r0 + top) * wd + left;
    for (let r = r0; r < r1; r++, s += ws, d += wd) {
      for (let c = c0; c < c1; c++) dst[d + c] = src[s + c];
    }
  }
}

/** placePlanes into a zeroed region, or one memcpy where the padded planes are the input planes (no padding). */
function stagePadded(src: FloatArray, srcOffset: number, planes: number, hs: number, ws: number,
  dst: FloatArray, dstOffset: number, hd: number, wd: number, top: number, left: number): void {
  if (hs === hd && ws === wd && top === 0 && left === 0) {
    dst.set(src.subarray(srcOffset, srcOffset + planes * hs * ws), dstOffset);
    return;
  }
  dst.fill(0, dstOffset, dstOffset + planes * hd * wd);
  placePlanes(src, srcOffset, planes, hs, ws, dst, dstOffset, hd, wd, top, left);
}

/** Builds the wide im2col matrix of `count` images: row (c, kh, kw) holds, for each image b, the q
 *  elements of padded plane (b, c) from offset kh·dh·wp + kw·dw (the same buffer: copyWithin). */
function wideColumns(ws: FloatArray, padded: number, channels: number, plane: number, count: number,
  kh: number, kw: number, dh: number, dw: number, wp: number, q: number, col: number): void {
  const ld = count * q;
  let row = col;
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++, row += ld) {
        const src = padded + c * plane + i * dh * wp + j * dw;
        for (let b = 0; b < count; b++) {
          const s = src + b * channels * plane;
          ws.copyWithin(row + b * q, s, s + q);
        }
      }
    }
  }
}

/** out[n, ch, r, c] = wide[ch, b·q + r·wp + c] (+ bias[ch]) for the `count` images from image n0. */
function unpackWide(ws: FloatArray, wide: number, q: number, wp: number, count: number, channels: number,
  h: number, w: number, out: FloatArray, outOffset: number, bias: FloatArray | null): void {
  const ld = count * q;
  for (let b = 0; b < count; b++) {
    for (let ch = 0; ch < channels; ch++) {
      let s = wide + ch * ld + b * q;
      let d = outOffset + (b * channels + ch) * h * w;
      if (bias === null) {
        for (let r = 0; r < h; r++, s += wp, d += w) for (let c = 0; c < w; c++) out[d + c] = ws[s + c];
      } else {
        const bv = bias[ch];
        for (let r = 0; r < h; r++, s += wp, d += w) for (let c = 0; c < w; c++) out[d + c] = ws[s + c] + bv;
      }
    }
  }
}

/** The opposite of unpackWide without bias: wide rows (already zeroed) receive the planes of src. */
function packWide(src: FloatArray, srcOffset: number, count: number, channels: number, h: number, w: number,
  ws: FloatArray, wide: number, q: number, wp: number): void {
  const ld = count * q;
  for (let b = 0; b < count; b++) {
    for (let ch = 0; ch < channels; ch++) {
      let s = srcOffset + (b * channels + ch) * h * w;
      let d = wide + ch * ld + b * q;
      for (let r = 0; r < h; r++, s += w, d += wp) for (let c = 0; c < w; c++) ws[d + c] = src[s + c];
    }
  }
}

/** col[(c·kH + i)·kW + j, oh·outW + ow] = x[c, oh·sh − ph + i·dh, ow·sw − pw + j·dw], or 0 outside the input. */
function im2col(g: Conv2dGeometry, x: FloatArray, xOffset: number, col: FloatArray): void {
  const { inChannels, height, width, kernelH, kernelW, strideH, strideW, padH, padW, dilationH, dilationW, outH, outW } = g;
  const l = outH * outW;
  let row = 0;
  for (let c = 0; c < inChannels; c++) {
    const plane = xOffset + c * height * width;
    for (let i = 0; i < kernelH; i++) {
      for (let j = 0; j < kernelW; j++, row += l) {
        const shift = j * dilationW - padW;
        // columns ow with 0 ≤ ow·sw + shift < width
        const lo = Math.min(outW, shift >= 0 ? 0 : Math.ceil(-shift / strideW));
        const hi = Math.max(lo, Math.min(outW, Math.ceil((width - shift) / strideW)));
        let o = row;
        for (let oh = 0; oh < outH; oh++, o += outW) {
          const ih = oh * strideH - padH + i * dilationH;
          if (ih < 0 || ih >= height) { col.fill(0, o, o + outW); continue; }
          const s = plane + ih * width + shift;
          for (let ow = 0; ow < lo; ow++) col[o + ow] = 0;
          for (let ow = lo; ow < hi; ow++) col[o + ow] = x[s + ow * strideW];
          for (let ow = hi; ow < outW; ow++) col[o + ow] = 0;
        }
      }
    }
  }
}

/** The adjoint of im2col: x[c, ih, iw] += col[...] over every (i, j, oh, ow) that read it. x is not zeroed here. */
function col2im(g: Conv2dGeometry, col: FloatArray, x: FloatArray, xOffset: number): void {
  const { inChannels, height, width, kernelH, kernelW, strideH, strideW, padH, padW, dilationH, dilationW, outH, outW } = g;
  const l = outH * outW;
  let row = 0;
  for (let c = 0; c < inChannels; c++) {
    const plane = xOffset + c * height * width;
    for (let i = 0; i < kernelH; i++) {
      for (let j = 0; j < kernelW; j++, row += l) {
        const shift = j * dilationW - padW;
        const lo = Math.min(outW, shift >= 0 ? 0 : Math.ceil(-shift / strideW));
        const hi = Math.max(lo, Math.min(outW, Math.ceil((width - shift) / strideW)));
        let o = row;
        for (let oh = 0; oh < outH; oh++, o += outW) {
          const ih = oh * strideH - padH + i * dilationH;
          if (ih < 0 || ih >= height) continue;
          const s = plane + ih * width + shift;
          for (let ow = lo; ow < hi; ow++) x[s + ow * strideW] += col[o + ow];
        }
      }
    }
  }
}

/**
 * The rows path's im2col of one image staged at ws[stage] (`channels` planes of hs × w, with `margin`
 * readable elements before and after): row (c, i, j) of the matrix at ws[col] (row stride ld, so that the
 * images of a chunk sit side by side) holds outH·w columns, output
 * (oh, ow) reading input (oh + i·dh − padTop, ow + j·dw − padLeft), or 0 outside the plane. The run of
 * valid output rows is one copyWithin; the output rows above and below it are zero-filled, and the columns
 * whose read wrapped around into the neighbouring input row (|j·dw − padLeft| per row) are zeroed after,
 * except wraps to the left of at most `zeroRight` columns where the staged rows end in that many zeros
 * (and the margin before the first plane is zero).
 */
function rowColumns(ws: FloatArray, stage: number, channels: number, hs: number, w: number,
  kh: number, kw: number, dh: number, dw: number, padTop: number, padLeft: number, outH: number, col: number, ld: number,
  zeroRight: number): void {
  const l = outH * w;
  let row = col;
  for (let c = 0; c < channels; c++) {
    const plane = stage + c * hs * w;
    for (let i = 0; i < kh; i++) {
      const shiftH = i * dh - padTop; // input row = oh + shiftH
      const oh0 = Math.min(outH, Math.max(0, -shiftH));
      const oh1 = Math.max(oh0, Math.min(outH, hs - shiftH));
      for (let j = 0; j < kw; j++, row += ld) {
        if (oh0 > 0) ws.fill(0, row, row + oh0 * w);
        if (oh1 < outH) ws.fill(0, row + oh1 * w, row + l);
        if (oh0 === oh1) continue;
        const shiftW = j * dw - padLeft; // input column = ow + shiftW
        const src = plane + (oh0 + shiftH) * w + shiftW;
        ws.copyWithin(row + oh0 * w, src, src + (oh1 - oh0) * w);
        // a read wrapping left lands in the previous row's last columns: nothing to fix where those are zeros
        const left = -shiftW <= zeroRight ? 0 : Math.min(w, -shiftW), right = Math.max(0, w - Math.max(0, shiftW));
        if (left === 0 && right === w) continue;
        for (let oh = oh0, r = row + oh0 * w; oh < oh1; oh++, r += w) {
          for (let k = 0; k < left; k++) ws[r + k] = 0;
          for (let k = right; k < w; k++) ws[r + k] = 0;
        }
      }
    }
  }
}

/** dst[image b, channel ch, :] = ws[from + ch·ld + b·size, + size] for `count` images and `channels`
 *  channels (dst image stride dstImage): a chunk's gemm result back into NCHW, one memcpy per plane. */
function copyPlanesOut(ws: FloatArray, from: number, ld: number, size: number, count: number, channels: number,
  dst: FloatArray, dstOffset: number, dstImage: number): void {
  for (let b = 0; b < count; b++) {
    for (let ch = 0; ch < channels; ch++) {
      const s = from + ch * ld + b * size;
      dst.set(ws.subarray(s, s + size), dstOffset + b * dstImage + ch * size);
    }
  }
}

/** The opposite of copyPlanesOut: the planes of `count` NCHW images of src into ws as [channels, count·size]. */
function copyPlanesIn(src: FloatArray, srcOffset: number, srcImage: number, size: number, count: number, channels: number,
  ws: FloatArray, to: number, ld: number): void {
  for (let b = 0; b < count; b++) {
    for (let ch = 0; ch < channels; ch++) {
      const s = srcOffset + b * srcImage + ch * size;
      ws.set(src.subarray(s, s + size), to + ch * ld + b * size);
    }
  }
}

/** The input gradient's kernel: per group, a [C/groups, (O/groups)·kH·kW] matrix of the weight flipped in
 *  both spatial axes with its two channel axes swapped, written to ws[at]. */
function flipWeights(g: Conv2dGeometry, weight: FloatArray, ws: FloatArray, at: number): void {
  const cg = g.inChannels / g.groups, og = g.outChannels / g.groups, kk = g.kernelH * g.kernelW, rows = og * kk;
  for (let grp = 0; grp < g.groups; grp++) {
    for (let o = 0; o < og; o++) {
      for (let c = 0; c < cg; c++) {
        const src = ((grp * og + o) * cg + c) * kk;
        const dst = at + (grp * cg + c) * rows + o * kk;
        for (let t = 0; t < kk; t++) ws[dst + t] = weight[src + kk - 1 - t];
      }
    }
  }
}

/** out[n, o, :] = bias[o] for every image and channel (fill: a memset per plane), before a gemm with beta 1. */
function fillBias(out: FloatArray, outOffset: number, batch: number, channels: number, size: number, bias: FloatArray): void {
  for (let n = 0; n < batch; n++) {
    for (let o = 0; o < channels; o++) {
      const d = outOffset + (n * channels + o) * size;
      out.fill(bias[o], d, d + size);
    }
  }
}

/**
 * gradBias (+)= Σ over images and positions of gradOut. With the native gemm: one gemm of gradOut, read as
 * [N·O, L], with a vector of ones (ws[at], L long) into per-plane sums (ws[at + L], N·O long), then a sum
 * over the images (a BLAS reads memory several times faster than a TypeScript loop). The WebAssembly and
 * TypeScript gemms pad a one-column product to a whole tile and copy gradOut in first: there, the loop.
 */
function biasGradient(g: Conv2dGeometry, gradOut: FloatArray, gradBias: FloatArray, ws: FloatArray, at: number, accumulate: boolean): void {
  const l = g.outH * g.outW, planes = g.batch * g.outChannels, sums = at + l;
  if (gemmBackend() !== "native") {
    conv2dBackwardBias(gradOut, g.batch, g.outChannels, l, gradBias, accumulate);
    return;
  }
  ws.fill(1, at, at + l);
  gemm(false, true, planes, 1, l, gradOut, 0, l, ws, at, l, ws, sums, 1, 0);
  for (let o = 0; o < g.outChannels; o++) {
    let s = 0;
    for (let n = 0; n < g.batch; n++) s += ws[sums + n * g.outChannels + o];
    gradBias[o] = accumulate ? gradBias[o] + s : s;
  }
}

/**
 * out = conv2d(x, weight) + bias, NCHW: x [N, C, H, W], weight [O, C/groups, kH, kW], bias [O] or null,
 * out [N, O, outH, outW] (overwritten). workspace: conv2dWorkspaceSize(g, "forward") elements of x's type.
 * @example conv2dForward(conv2dGeometry([2, 3, 8, 8], [4, 3, 3, 3], { padding: 1 }), x, w, b, out, ws)
 */
export function conv2dForward(g: Conv2dGeometry, x: FloatArray, weight: FloatArray, bias: FloatArray | null,
  out: FloatArray, workspace: FloatArray): void {
  const { batch: n, inChannels: cin, outChannels: cout, groups } = g;
  const cg = cin / groups, og = cout / groups, kk = g.kernelH * g.kernelW, rows = cg * kk;
  const inSize = cin * g.height * g.width, outSize = cout * g.outH * g.outW, l = g.outH * g.outW;
  checkBuffers("conv2dForward", [x, weight, bias, out, workspace],
    [n * inSize, cout * rows, cout, n * outSize, conv2dWorkspaceSize(g, "forward")], ["x", "weight", "bias", "out", "workspace"]);
  if (n === 0) return;
  const native = x instanceof Float32Array ? nativeConv(g) : null;
  if (native !== null) {
    native.convForward(nativeGeometry(g), x as Float32Array, weight as Float32Array, bias as Float32Array | null, out as Float32Array, workspace as Float32Array);
    return;
  }
  const path = conv2dPath(g);
  const beta: 0 | 1 = bias ? 1 : 0;
  if (path === "pointwise") {
    if (bias) fillBias(out, 0, n, cout, l, bias);
    for (let b = 0; b < n; b++) {
      for (let grp = 0; grp < groups; grp++) {
        gemm(false, false, og, l, cg, weight, grp * og * cg, cg, x, b * inSize + grp * cg * l, l, out, b * outSize + grp * og * l, l, beta);
      }
    }
    return;
  }
  if (path === "rows") {
    const nb = chunkImages(g, l), margin = rowsMargin(g), plane = g.height * g.width;
    const block = rowsBlockChannels(cg, kk, nb * l);
    const stage = margin, col = nb * inSize + 2 * margin, result = col + block * kk * nb * l;
    for (let n0 = 0; n0 < n; n0 += nb) {
      const count = Math.min(nb, n - n0), ld = count * l;
      workspace.set(x.subarray(n0 * inSize, (n0 + count) * inSize), stage);
      if (count === 1 && bias) fillBias(out, n0 * outSize, 1, cout, l, bias);
      for (let grp = 0; grp < groups; grp++) {
        // one image: the gemm writes into out; several: into the workspace, copied out per plane below
        const direct = count === 1;
        const c = direct ? out : workspace, cOffset = direct ? n0 * outSize + grp * og * l : result;
        if (count > 1 && bias) for (let o = 0; o < og; o++) workspace.fill(bias[grp * og + o], result + o * ld, result + (o + 1) * ld);
        for (let c0 = 0; c0 < cg; c0 += block) {
          const channels = Math.min(block, cg - c0);
          for (let b = 0; b < count; b++) {
            rowColumns(workspace, stage + b * inSize + (grp * cg + c0) * plane, channels, g.height, g.width, g.kernelH, g.kernelW,
              g.dilationH, g.dilationW, g.padH, g.padW, g.outH, col + b * l, ld, 0);
          }
          gemm(false, false, og, ld, channels * kk, weight, grp * og * rows + c0 * kk, rows, workspace, col, ld, c, cOffset, ld, c0 === 0 ? beta : 1);
        }
        if (count > 1) copyPlanesOut(workspace, result, ld, l, count, og, out, n0 * outSize + grp * og * l, outSize);
      }
    }
    return;
  }
  if (path === "im2col") {
    if (bias) fillBias(out, 0, n, cout, l, bias);
    for (let b = 0; b < n; b++) {
      im2col(g, x, b * inSize, workspace);
      for (let grp = 0; grp < groups; grp++) {
        gemm(false, false, og, l, rows, weight, grp * og * rows, rows, workspace, grp * rows * l, l, out, b * outSize + grp * og * l, l, beta);
      }
    }
    return;
  }
  const { hp, wp, q } = forwardGrid(g);
  const plane = hp * wp;
  const nb = chunkImages(g, q);
  const padded = 0, col = nb * cin * plane, wide = col + cin * kk * nb * q;
  for (let n0 = 0; n0 < n; n0 += nb) {
    const count = Math.min(nb, n - n0), ld = count * q;
    stagePadded(x, n0 * inSize, count * cin, g.height, g.width, workspace, padded, hp, wp, g.padH, g.padW);
    wideColumns(workspace, padded, cin, plane, count, g.kernelH, g.kernelW, g.dilationH, g.dilationW, wp, q, col);
    for (let grp = 0; grp < groups; grp++) {
      gemm(false, false, og, ld, rows, weight, grp * og * rows, rows, workspace, col + grp * rows * ld, ld, workspace, wide + grp * og * ld, ld, 0);
    }
    unpackWide(workspace, wide, q, wp, count, cout, g.outH, g.outW, out, n0 * outSize, bias);
  }
}

/**
 * gradInput = the gradient of conv2d with respect to x, given gradOut [N, O, outH, outW] (overwritten,
 * [N, C, H, W]). workspace: conv2dWorkspaceSize(g, "backwardInput") elements.
 * NOTE: this is the adjoint of conv2dForward without bias: <conv(x), g> = <x, conv2dBackwardInput(g)>.
 * On the stride-1 paths it is a stride-1 convolution of gradOut, padded by dilation·(k − 1) − pad (cropped
 * where that is negative), with the flipped, channel-transposed kernel.
 */
export function conv2dBackwardInput(g: Conv2dGeometry, gradOut: FloatArray, weight: FloatArray,
  gradInput: FloatArray, workspace: FloatArray): void {
  const { batch: n, inChannels: cin, outChannels: cout, groups, kernelH: kh, kernelW: kw } = g;
  const cg = cin / groups, og = cout / groups, kk = kh * kw;
  const inSize = cin * g.height * g.width, outSize = cout * g.outH * g.outW, l = g.outH * g.outW;
  checkBuffers("conv2dBackwardInput", [gradOut, weight, gradInput, workspace],
    [n * outSize, cout * cg * kk, n * inSize, conv2dWorkspaceSize(g, "backwardInput")], ["gradOut", "weight", "gradInput", "workspace"]);
  if (n === 0) return;
  const native = gradOut instanceof Float32Array ? nativeConv(g) : null;
  if (native !== null) {
    native.convBackwardInput(nativeGeometry(g), gradOut as Float32Array, weight as Float32Array, gradInput as Float32Array, workspace as Float32Array);
    return;
  }
  const path = conv2dBackwardInputPath(g);
  if (path === "pointwise") {
    for (let b = 0; b < n; b++) {
      for (let grp = 0; grp < groups; grp++) {
        gemm(true, false, cg, l, og, weight, grp * og * cg, cg, gradOut, b * outSize + grp * og * l, l, gradInput, b * inSize + grp * cg * l, l, 0);
      }
    }
    return;
  }
  if (path === "im2col") {
    const rows = cg * kk;
    gradInput.fill(0, 0, n * inSize);
    for (let b = 0; b < n; b++) {
      for (let grp = 0; grp < groups; grp++) {
        gemm(true, false, rows, l, og, weight, grp * og * rows, rows, gradOut, b * outSize + grp * og * l, l, workspace, grp * rows * l, l, 0);
      }
      col2im(g, workspace, gradInput, b * inSize);
    }
    return;
  }
  const rows = og * kk;
  const flipped = 0;
  flipWeights(g, weight, workspace, flipped);
  const top = g.dilationH * (kh - 1) - g.padH, left = g.dilationW * (kw - 1) - g.padW;
  if (path === "rows") {
    // the output gradient staged with rows as wide as the input's: as it is, or (outW < width, a convolution
    // without "same" padding) with zero columns on the right and its padding rows, so that no read wrapping
    // left needs fixing and no output row lies outside the staged plane
    const hw = g.height * g.width, nb = chunkImages(g, hw), margin = rowsMargin(g);
    const widened = g.outW !== g.width;
    const stagedRows = widened ? g.height + g.dilationH * (kh - 1) : g.outH;
    const stagedPlane = stagedRows * g.width, stagedImage = cout * stagedPlane;
    const block = rowsBlockChannels(og, kk, nb * hw);
    const stage = cout * cg * kk + margin, col = stage + nb * stagedImage + margin, result = col + block * kk * nb * hw;
    for (let n0 = 0; n0 < n; n0 += nb) {
      const count = Math.min(nb, n - n0), ld = count * hw;
      if (widened) {
        workspace.fill(0, stage - margin, stage + count * stagedImage);
        placePlanes(gradOut, n0 * outSize, count * cout, g.outH, g.outW, workspace, stage, stagedRows, g.width, top, 0);
      } else {
        workspace.set(gradOut.subarray(n0 * outSize, (n0 + count) * outSize), stage);
      }
      for (let grp = 0; grp < groups; grp++) {
        const direct = count === 1;
        const c = direct ? gradInput : workspace, cOffset = direct ? n0 * inSize + grp * cg * hw : result;
        for (let o0 = 0; o0 < og; o0 += block) {
          const channels = Math.min(block, og - o0);
          for (let b = 0; b < count; b++) {
            rowColumns(workspace, stage + b * stagedImage + (grp * og + o0) * stagedPlane, channels, stagedRows, g.width, kh, kw,
              g.dilationH, g.dilationW, widened ? 0 : top, left, g.height, col + b * hw, ld, widened ? g.width - g.outW : 0);
          }
          gemm(false, false, cg, ld, channels * kk, workspace, flipped + grp * cg * rows + o0 * kk, rows, workspace, col, ld,
            c, cOffset, ld, o0 === 0 ? 0 : 1);
        }
        if (count > 1) copyPlanesOut(workspace, result, ld, hw, count, cg, gradInput, n0 * inSize + grp * cg * hw, inSize);
      }
    }
    return;
  }
  const { hp, wp, q } = backwardGrid(g);
  const plane = hp * wp;
  const nb = chunkImages(g, q);
  const padded = cout * cg * kk, col = padded + nb * cout * plane, wide = col + cout * kk * nb * q;
  for (let n0 = 0; n0 < n; n0 += nb) {
    const count = Math.min(nb, n - n0), ld = count * q;
    workspace.fill(0, padded, padded + count * cout * plane);
    placePlanes(gradOut, n0 * outSize, count * cout, g.outH, g.outW, workspace, padded, hp, wp, top, left);
    wideColumns(workspace, padded, cout, plane, count, kh, kw, g.dilationH, g.dilationW, wp, q, col);
    for (let grp = 0; grp < groups; grp++) {
      gemm(false, false, cg, ld, rows, workspace, flipped + grp * cg * rows, rows, workspace, col + grp * rows * ld, ld, workspace, wide + grp * cg * ld, ld, 0);
    }
    unpackWide(workspace, wide, q, wp, count, cin, g.height, g.width, gradInput, n0 * inSize, null);
  }
}

/**
 * gradWeight (+)= the gradient of conv2d with respect to the weight, summed over the batch
 * ([O, C/groups, kH, kW]), and, where gradBias is given, gradBias (+)= Σ gradOut over images and
 * positions. accumulate false overwrites them, true adds to them.
 * workspace: conv2dWorkspaceSize(g, "backwardWeight") elements.
 */
export function conv2dBackwardWeight(g: Conv2dGeometry, x: FloatArray, gradOut: FloatArray,
  gradWeight: FloatArray, gradBias: FloatArray | null, workspace: FloatArray, accumulate = false): void {
  const { batch: n, inChannels: cin, outChannels: cout, groups } = g;
  const cg = cin / groups, og = cout / groups, kk = g.kernelH * g.kernelW, rows = cg * kk;
  const inSize = cin * g.height * g.width, outSize = cout * g.outH * g.outW, l = g.outH * g.outW;
  const size = conv2dWorkspaceSize(g, "backwardWeight");
  checkBuffers("conv2dBackwardWeight", [x, gradOut, gradWeight, gradBias, workspace],
    [n * inSize, n * outSize, cout * rows, cout, size], ["x", "gradOut", "gradWeight", "gradBias", "workspace"]);
  if (n === 0) {
    if (!accumulate) { gradWeight.fill(0, 0, cout * rows); gradBias?.fill(0, 0, cout); }
    return;
  }
  const native = x instanceof Float32Array ? nativeConv(g) : null;
  if (native !== null) {
    native.convBackwardWeight(nativeGeometry(g), x as Float32Array, gradOut as Float32Array, gradWeight as Float32Array, gradBias as Float32Array | null,
      workspace as Float32Array, accumulate);
    return;
  }
  // the bias gradient's scratch sits at the end of the workspace, after what the path uses
  if (gradBias) biasGradient(g, gradOut, gradBias, workspace, size - (l + n * cout), accumulate);
  let beta: 0 | 1 = accumulate ? 1 : 0;
  const path = conv2dPath(g);
  if (path === "pointwise") {
    for (let b = 0; b < n; b++, beta = 1) {
      for (let grp = 0; grp < groups; grp++) {
        gemm(false, true, og, cg, l, gradOut, b * outSize + grp * og * l, l, x, b * inSize + grp * cg * l, l, gradWeight, grp * og * cg, cg, beta);
      }
    }
    return;
  }
  if (path === "rows") {
    const nb = chunkImages(g, l), margin = rowsMargin(g), plane = g.height * g.width;
    const block = rowsBlockChannels(cg, kk, nb * l);
    const stage = margin, col = nb * inSize + 2 * margin, staged = col + block * kk * nb * l;
    for (let n0 = 0; n0 < n; n0 += nb, beta = 1) {
      const count = Math.min(nb, n - n0), ld = count * l;
      workspace.set(x.subarray(n0 * inSize, (n0 + count) * inSize), stage);
      // the output gradient of the chunk as [O, count·L]: as it lies for one image, gathered for several
      const a = count === 1 ? gradOut : workspace, aOffset = count === 1 ? n0 * outSize : staged;
      if (count > 1) copyPlanesIn(gradOut, n0 * outSize, outSize, l, count, cout, workspace, staged, ld);
      for (let grp = 0; grp < groups; grp++) {
        for (let c0 = 0; c0 < cg; c0 += block) {
          const channels = Math.min(block, cg - c0);
          for (let b = 0; b < count; b++) {
            rowColumns(workspace, stage + b * inSize + (grp * cg + c0) * plane, channels, g.height, g.width, g.kernelH, g.kernelW,
              g.dilationH, g.dilationW, g.padH, g.padW, g.outH, col + b * l, ld, 0);
          }
          gemm(false, true, og, channels * kk, ld, a, aOffset + grp * og * ld, ld, workspace, col, ld,
            gradWeight, grp * og * rows + c0 * kk, rows, beta);
        }
      }
    }
    return;
  }
  if (path === "im2col") {
    for (let b = 0; b < n; b++, beta = 1) {
      im2col(g, x, b * inSize, workspace);
      for (let grp = 0; grp < groups; grp++) {
        gemm(false, true, og, rows, l, gradOut, b * outSize + grp * og * l, l, workspace, grp * rows * l, l, gradWeight, grp * og * rows, rows, beta);
      }
    }
    return;
  }
  const { hp, wp, q } = forwardGrid(g);
  const plane = hp * wp;
  const nb = chunkImages(g, q);
  const padded = 0, col = nb * cin * plane, wide = col + cin * kk * nb * q;
  for (let n0 = 0; n0 < n; n0 += nb, beta = 1) {
    const count = Math.min(nb, n - n0), ld = count * q;
    stagePadded(x, n0 * inSize, count * cin, g.height, g.width, workspace, padded, hp, wp, g.padH, g.padW);
    wideColumns(workspace, padded, cin, plane, count, g.kernelH, g.kernelW, g.dilationH, g.dilationW, wp, q, col);
    // the wide gradient's thrown-away columns must be zero: they meet real columns of the im2col matrix
    workspace.fill(0, wide, wide + cout * ld);
    packWide(gradOut, n0 * outSize, count, cout, g.outH, g.outW, workspace, wide, q, wp);
    for (let grp = 0; grp < groups; grp++) {
      gemm(false, true, og, rows, ld, workspace, wide + grp * og * ld, ld, workspace, col + grp * rows * ld, ld, gradWeight, grp * og * rows, rows, beta);
    }
  }
}

/**
 * gradBias (+)= Σ over images and positions of gradOut [N, O, outH, outW], summed in double, without a
 * workspace (conv2dBackwardWeight computes the same with one gemm).
 * @example conv2dBackwardBias(gradOut, 128, 32, 28 * 28, gradBias)
 */
export function conv2dBackwardBias(gradOut: FloatArray, batch: number, channels: number, size: number,
  gradBias: FloatArray, accumulate = false): void {
  for (let o = 0; o < channels; o++) {
    let s = 0;
    for (let b = 0; b < batch; b++) {
      const base = (b * channels + o) * size;
      for (let i = 0; i < size; i++) s += gradOut[base + i];
    }
    gradBias[o] = accumulate ? gradBias[o] + s : s;
  }
}
