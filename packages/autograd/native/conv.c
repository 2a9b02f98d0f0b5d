/*
 * Direct float32 convolutions with AVX-512 for stride-1 geometries (any padding, dilation and groups): the
 * forward, the input gradient and the weight (+ bias) gradient of src/kernels/conv.ts, without an im2col
 * matrix. The products read the input planes where they lie: output positions go 16 to a vector, and the
 * vector of input values that kernel tap (i, j) meets is one masked load at a fixed offset from the
 * vector's own base, the mask zeroing the lanes whose input lies in the padding (a masked-off lane reads no
 * memory). A vector covers 16 consecutive positions of the flattened output plane when input and output
 * rows are equally wide (the shift is then the same for every lane), else up to 16 positions of one output
 * row.
 *
 * forward:  out[o, p] = bias[o] + sum over (tap t, channel c) of W[o, c, t] x[c, p + shift(t)]: tiles of 8
 *           output channels x up to 3 vectors, weights broadcast, the sum over channels innermost;
 * input gradient: the same kernel on the output gradient with the kernel flipped and its channel axes
 *           swapped (a stride-1 convolution padded by dilation (k - 1) - pad);
 * weight gradient: gw[o, c, t] = sum over images and positions of g[o, p] x[c, p + shift(t)], per block of
 *           images (wg_images) into that block's slot, the slots summed in block order at the end; either
 *           along the output channels (ov_tile: the block's input staged with its padding, its output
 *           gradient transposed, a register tile of (channel, tap) columns x vectors of 16 output
 *           channels) or, with few channels or columns, along the positions (nt_tile: 4 output channels x 6
 *           columns of vector partial sums, or 5-6 channels x 4 columns).
 * The units of work (a few images and a group; a block of images for the weight gradient) are shared with
 * the helper thread (helper.c) from products of split_min_work multiply-adds. Every output element is
 * computed by one unit in a fixed order, so a result does not depend on the thread count or on which
 * thread ran which unit.
 *
 * Exports: convAvailable (true where the CPU has AVX-512F), convWorkspace(pass, geometry),
 * convForward(geometry, x, w, bias | null, out, workspace),
 * convBackwardInput(geometry, gradOut, w, gradInput, workspace),
 * convBackwardWeight(geometry, x, gradOut, gradWeight, gradBias | null, workspace, accumulate).
 * geometry is an Int32Array [batch, inChannels, height, width, outChannels, kernelH, kernelW, padH, padW,
 * dilationH, dilationW, groups, outH, outW]; all arrays Float32Array; the workspace holds the vector
 * tables, the packed weights and the weight gradient's block sums (convWorkspace floats).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>

#include "native.h"

enum { PASS_FORWARD = 0, PASS_BACKWARD_INPUT = 1, PASS_BACKWARD_WEIGHT = 2 };

/* Images per block of the weight gradient (where the bounds of wg_images allow): the block's output gradient
 * and input (conv2 of the cnn: 8 x 75 KB) stay in the L2 cache while the tiles pass over them, and the
 * per-block reduction of each tile's vector sums costs a few percent of its multiply-adds. */
#define WG_BLOCK 8

/* Output channels x vectors (up to) of one forward tile: 3 vectors, 4 for tiles of NN_WIDE_MR rows or fewer
 * (24 accumulators; LeNet's conv1 of 6 channels, which sums one input channel per tap, spends less on each tap's
 * masks and addresses: 0.70 -> 0.58 ms); and output channels x (channel, tap) columns of one weight-gradient
 * tile. */
#define NN_MR 8
#define NN_NV 4
#define NN_WIDE_MR 6
#define NT_MR 6
#define NT_NR 6

typedef struct {
  int batch, cin, h, w, cout, kh, kw, ph, pw, dh, dw, groups, oh, ow;
} geom_t;

/* Output plane (out_h x out_w) position (r, s) meets input plane (in_h x in_w) position
 * (r + i dh - ph, s + j dw - pw) through tap (i, j). */
typedef struct {
  int in_h, in_w, out_h, out_w, kh, kw, dh, dw, ph, pw;
  int images;                 /* images whose vectors follow one another in the table */
  int64_t in_image, out_image; /* elements between consecutive images' planes */
} plane_map_t;

/* The vectors that cover one output plane. */
typedef struct {
  int count, kk;
  int32_t *out_base; /* [count]: the plane index of lane 0 */
  int32_t *in_base;  /* [count]: lane 0's input index for tap (0, 0) (may lie outside the plane) */
  int32_t *off;      /* [kk]: tap t's shift from in_base */
  uint16_t *store;   /* [count]: the lanes that are output positions */
  uint16_t *masks;   /* [count][kk]: the lanes whose input for tap t lies inside the plane */
} vectors_t;

/* Vectors per image. */
static int64_t image_vectors(const plane_map_t *m) {
  if (m->in_w == m->out_w) return ((int64_t)m->out_h * m->out_w + 15) / 16;
  return (int64_t)m->out_h * ((m->out_w + 15) / 16);
}

static int64_t vector_count(const plane_map_t *m) { return image_vectors(m) * m->images; }

/* Floats of workspace the vector table of m takes. */
static int64_t vectors_floats(const plane_map_t *m) {
  int64_t v = vector_count(m), kk = (int64_t)m->kh * m->kw;
  return 2 * v + kk + (v * (kk + 1) + 1) / 2 + 1;
}

static void build_vectors(const plane_map_t *m, float *at, vectors_t *t) {
  const int kk = m->kh * m->kw;
  t->count = (int)vector_count(m);
  t->kk = kk;
  t->out_base = (int32_t *)at;
  t->in_base = t->out_base + t->count;
  t->off = t->in_base + t->count;
  t->store = (uint16_t *)(t->off + kk);
  t->masks = t->store + t->count;
  for (int i = 0; i < m->kh; i++)
    for (int j = 0; j < m->kw; j++) t->off[i * m->kw + j] = i * m->dh * m->in_w + j * m->dw;
  const int flat = m->in_w == m->out_w;
  const int per_row = (m->out_w + 15) / 16, plane = m->out_h * m->out_w, per_image = (int)image_vectors(m);
  for (int v = 0; v < per_image; v++) {
    int r0, s0; /* lane 0's output row and column */
    if (flat) {
      r0 = v * 16 / m->out_w;
      s0 = v * 16 - r0 * m->out_w;
    } else {
      r0 = v / per_row;
      s0 = (v - r0 * per_row) * 16;
    }
    t->out_base[v] = r0 * m->out_w + s0;
    t->in_base[v] = (r0 - m->ph) * m->in_w + s0 - m->pw;
    unsigned store = 0;
    uint16_t *mk = t->masks + (int64_t)v * kk;
    for (int tap = 0; tap < kk; tap++) mk[tap] = 0;
    for (int lane = 0; lane < 16; lane++) {
      int r, s;
      if (flat) {
        int p = v * 16 + lane;
        if (p >= plane) break;
        r = p / m->out_w;
        s = p - r * m->out_w;
      } else {
        r = r0;
        s = s0 + lane;
        if (s >= m->out_w) break;
      }
      store |= 1u << lane;
      for (int i = 0; i < m->kh; i++) {
        int ih = r + i * m->dh - m->ph;
        if (ih < 0 || ih >= m->in_h) continue;
        for (int j = 0; j < m->kw; j++) {
          int iw = s + j * m->dw - m->pw;
          if (iw >= 0 && iw < m->in_w) mk[i * m->kw + j] |= (uint16_t)(1u << lane);
        }
      }
    }
    t->store[v] = (uint16_t)store;
  }
  /* the next images' vectors: the same masks, the bases one image further on */
  for (int v = per_image; v < t->count; v++) {
    const int first = v % per_image, image = v / per_image;
    t->out_base[v] = (int32_t)(t->out_base[first] + image * m->out_image);
    t->in_base[v] = (int32_t)(t->in_base[first] + image * m->in_image);
    t->store[v] = t->store[first];
    memcpy(t->masks + (int64_t)v * kk, t->masks + (int64_t)first * kk, (size_t)kk * sizeof(uint16_t));
  }
}

/* Images per unit of the forward and input-gradient products: enough that a unit's table holds about
 * NN_UNIT_VECTORS vectors, so that few tiles are left with fewer than three (14 x 14 planes: 13 vectors
 * an image, 26 for two); at most NN_UNIT_IMAGES, and one where the images' offsets would not fit 32 bits.
 * Timings: bench/NOTES-conv.md, "Direct convolutions". */
#define NN_UNIT_VECTORS 24
#define NN_UNIT_IMAGES 8

static plane_map_t unit_map(plane_map_t m, int batch) {
  const int64_t per = image_vectors(&m);
  int64_t images = (NN_UNIT_VECTORS + per - 1) / per;
  if (images > NN_UNIT_IMAGES) images = NN_UNIT_IMAGES;
  if (images > batch) images = batch > 0 ? batch : 1;
  const int64_t largest = m.in_image > m.out_image ? m.in_image : m.out_image;
  if (images * largest >= ((int64_t)1 << 30)) images = 1;
  m.images = (int)images;
  return m;
}

/* The forward: x planes to output planes, the images of a unit in one table. */
static plane_map_t forward_map(const geom_t *g) {
  plane_map_t m = { g->h, g->w, g->oh, g->ow, g->kh, g->kw, g->dh, g->dw, g->ph, g->pw, 1,
                    (int64_t)g->cin * g->h * g->w, (int64_t)g->cout * g->oh * g->ow };
  return unit_map(m, g->batch);
}

/* The weight gradient's positions: one image's vectors. */
static plane_map_t weight_map(const geom_t *g) {
  plane_map_t m = { g->h, g->w, g->oh, g->ow, g->kh, g->kw, g->dh, g->dw, g->ph, g->pw, 1, 0, 0 };
  return m;
}

/* The input gradient as a convolution of the output gradient with the flipped kernel. */
static plane_map_t backward_input_map(const geom_t *g) {
  plane_map_t m = { g->oh, g->ow, g->h, g->w, g->kh, g->kw, g->dh, g->dw,
                    g->dh * (g->kh - 1) - g->ph, g->dw * (g->kw - 1) - g->pw, 1,
                    (int64_t)g->cout * g->oh * g->ow, (int64_t)g->cin * g->h * g->w };
  return unit_map(m, g->batch);
}

/* Winograd F(2x2, 3x3) for 3x3 undilated convolutions whose summed and produced channels per group are
 * multiples of 16 (the cnn's second layer, forward and input gradient): each 2 x 2 block of outputs from
 * the 4 x 4 input patch under it, as Y = A^T [(G g G^T) . (B^T d B)] A, where the 16 products per (block,
 * output channel, input channel) replace 36 multiply-adds; the sums over input channels are 16 gemms, one per
 * position of the 4 x 4 transformed tile. The input is staged as [position][channel] with its padding as zeros
 * (16 x 16 register transposes), so the transforms run on vectors of 16 channels; the outputs are gathered as
 * [position][channel] and transposed back. Rounding differs from the direct sum by a few units in the last
 * place; the transform's constants (0.5, 1) are exact. Timings: bench/NOTES-conv.md, "Winograd". */
typedef struct {
  int C, O;          /* channels summed and produced, per group */
  int in_h, in_w, out_h, out_w;
  int ph, pw;        /* padding of the planes read (may be negative: a cropped input gradient) */
  int th, tw;        /* blocks of 2 x 2 outputs */
  int hs, wd;        /* the staged plane: 2 th + 2 rows, 2 tw + 2 columns */
} wino_t;

static int wino_applies(const geom_t *g) {
  const int cg = g->cin / g->groups, og = g->cout / g->groups;
  return g->kh == 3 && g->kw == 3 && g->dh == 1 && g->dw == 1 && cg % 16 == 0 && og % 16 == 0;
}

static wino_t wino_plan(int C, int O, int in_h, int in_w, int out_h, int out_w, int ph, int pw) {
  const int th = (out_h + 1) / 2, tw = (out_w + 1) / 2;
  wino_t p = { C, O, in_h, in_w, out_h, out_w, ph, pw, th, tw, 2 * th + 2, 2 * tw + 2 };
  return p;
}

static wino_t wino_forward(const geom_t *g) {
  return wino_plan(g->cin / g->groups, g->cout / g->groups, g->h, g->w, g->oh, g->ow, g->ph, g->pw);
}

static wino_t wino_backward_input(const geom_t *g) {
  return wino_plan(g->cout / g->groups, g->cin / g->groups, g->oh, g->ow, g->h, g->w, 2 - g->ph, 2 - g->pw);
}

/* One worker's floats: the staged input, V [16][blocks][C], M [16][blocks][O], the outputs [position][O]. */
static int64_t wino_scratch(const wino_t *p) {
  const int64_t T = (int64_t)p->th * p->tw;
  return (int64_t)p->hs * p->wd * p->C + 16 * T * p->C + 16 * T * p->O + 4 * T * p->O + 64;
}

/* The transformed weights U [groups][16][C][O], then one scratch per worker. */
static int64_t wino_floats(const geom_t *g, const wino_t *p) {
  return (int64_t)g->groups * 16 * p->C * p->O + 2 * wino_scratch(p) + 16;
}


/* The weight gradient vectorizes along the output channels (ov_tile) from OV_MIN_CHANNELS output channels per
 * group, along the positions (nt_tile) with fewer, where most lanes of a channel vector would be idle, or
 * where one image's staging would exceed OV_MAX_STAGING floats (bench/NOTES-conv.md, "Weight gradient"). */
#define OV_MIN_CHANNELS 16
#define OV_MAX_STAGING ((int64_t)1 << 20)
/* The block sums of all blocks together stay below WG_MAX_SUMS floats (128 MB): large weights take
 * larger blocks. */
#define WG_MAX_SUMS ((int64_t)1 << 25)

/* The staged planes of the output-channel form: hp x wp, the input with its padding as zeros. */
static int64_t ov_hp(const geom_t *g) { return (int64_t)g->oh + (int64_t)g->dh * (g->kh - 1); }
static int64_t ov_wp(const geom_t *g) { return (int64_t)g->ow + (int64_t)g->dw * (g->kw - 1); }
static int64_t ov_ogp(const geom_t *g) { return ((int64_t)g->cout / g->groups + 15) / 16 * 16; }

/* Floats one image takes in the output-channel form's staging: its padded input, a plane of ones (the bias
 * gradient's column), and one group's transposed output gradient. */
static int64_t ov_image(const geom_t *g) {
  return (int64_t)(g->cin + 1) * ov_hp(g) * ov_wp(g) + (int64_t)g->oh * g->ow * ov_ogp(g);
}

static int use_ov(const geom_t *g) {
  return g->cout / g->groups >= OV_MIN_CHANNELS && ov_image(g) <= OV_MAX_STAGING;
}

/* The output-channel form's block sums, per block: [groups][K + 1][ogp], column K the bias's. */
static int64_t ov_slot(const geom_t *g) {
  return (int64_t)g->groups * ((g->cin / g->groups) * g->kh * g->kw + 1) * ov_ogp(g);
}

/* The Winograd form's block sums: [groups][16][og][cg], then the bias. */
static int64_t wino_w_slot(const geom_t *g) {
  return (int64_t)g->groups * 16 * (g->cout / g->groups) * (g->cin / g->groups) + g->cout;
}

/* One worker's floats in the Winograd form: the staged input and its transform, the staged output gradient
 * and its transform (one image at a time). */
static int64_t wino_w_scratch(const geom_t *g) {
  const wino_t p = wino_forward(g);
  const int64_t T = (int64_t)p.th * p.tw;
  return (int64_t)p.hs * p.wd * p.C + 16 * T * p.C + 4 * T * p.O + 16 * T * p.O + 64;
}

/* One block's sums: the Winograd form's, the output-channel form's, or [cout][K] and the bias. */
static int64_t wg_slot(const geom_t *g) {
  if (wino_applies(g)) return wino_w_slot(g);
  return use_ov(g) ? ov_slot(g) : (int64_t)g->cout * (g->cin / g->groups) * g->kh * g->kw + g->cout;
}

/* Images per block of the weight gradient: WG_BLOCK, fewer where the staging of WG_BLOCK images would pass
 * OV_MAX_STAGING, more where the blocks' sums would pass WG_MAX_SUMS. A function of the geometry alone, so
 * the sums' grouping does not depend on the threads. */
static int64_t wg_images(const geom_t *g) {
  int64_t images = WG_BLOCK;
  if (!wino_applies(g) && use_ov(g) && images * ov_image(g) > OV_MAX_STAGING) images = OV_MAX_STAGING / ov_image(g);
  if (images < 1) images = 1;
  const int64_t slot = wg_slot(g), max_blocks = WG_MAX_SUMS / slot > 1 ? WG_MAX_SUMS / slot : 1;
  if ((g->batch + images - 1) / images > max_blocks) images = (g->batch + max_blocks - 1) / max_blocks;
  return images;
}

static int64_t wg_blocks(const geom_t *g) { return (g->batch + wg_images(g) - 1) / wg_images(g); }

/* Floats of one worker's staging area in the output-channel form. */
static int64_t ov_scratch(const geom_t *g) { return wg_images(g) * ov_image(g) + 16; }


/* The forward along the output channels (oc_unit): where output rows are narrower than a vector and than the
 * input's rows (the position form then leaves lanes idle: LeNet's second layer fills 10 of 16), with output
 * channels per group a multiple of 16. Timings: bench/NOTES-conv.md, "LeNet's conv2 forward along the output
 * channels". */
#define OC_MAX_W 12
static int use_oc(const geom_t *g) {
  return g->ow <= OC_MAX_W && g->w != g->ow && (g->cout / g->groups) % 16 == 0 && !wino_applies(g);
}

/* Whether the output-channel forward reads the input planes as they are (no padding to add or crop). */
static int oc_direct(const geom_t *g) { return ov_hp(g) == g->h && ov_wp(g) == g->w && g->ph == 0 && g->pw == 0; }

/* One worker's floats in the output-channel forward: the group's input planes staged with their padding
 * (unless read directly), then the outputs as [position][16 channels]. */
static int64_t oc_scratch(const geom_t *g) {
  return (oc_direct(g) ? 0 : (int64_t)(g->cin / g->groups) * ov_hp(g) * ov_wp(g)) + (int64_t)g->oh * g->ow * 16 + 16;
}

/* The input gradient with 16 images to a vector (il_unit): where the position form's vectors are rows of an input
 * gradient wider than the output gradient (valid convolutions: LeNet's second layer, whose 14 x 14 input gradient
 * meets its 10 x 10 output gradient through 4 columns of padding on each side), most of a row vector's lanes
 * multiply padding; with images in the lanes every lane is useful, and only the taps of a few positions near the
 * plane's edges meet padding. Each element's sum runs over the same taps, then channels, in the same order. The
 * output gradient of 16 images is staged as [channel][row][column][image] with its padding columns as zeros, the
 * result as [channel][position][image] and transposed back. Timings: bench/NOTES-conv.md, "LeNet's conv2 input
 * gradient with images in the lanes". */
#define IL_IMAGES 16
#define IL_MAX_SCRATCH ((int64_t)1 << 18)

static int il_ph(const geom_t *g) { return g->dh * (g->kh - 1) - g->ph; }
static int il_pw(const geom_t *g) { return g->dw * (g->kw - 1) - g->pw; }
/* The staged output gradient's row width: every column a tap reads, from the left padding on. */
static int64_t il_wp(const geom_t *g) {
  const int64_t read = (int64_t)g->w + (int64_t)g->dw * (g->kw - 1), data = (int64_t)il_pw(g) + g->ow;
  return read > data ? read : data;
}
/* One worker's floats: the staged output gradient of a group, then its result. */
static int64_t il_scratch(const geom_t *g) {
  return ((int64_t)(g->cout / g->groups) * g->oh * il_wp(g) + (int64_t)(g->cin / g->groups) * g->h * g->w) * IL_IMAGES + 16;
}
static int use_il(const geom_t *g) {
  return g->w != g->ow && g->batch >= IL_IMAGES && il_ph(g) >= 0 && il_pw(g) >= 0 && !wino_applies(g) &&
         il_scratch(g) <= IL_MAX_SCRATCH;
}

/* Floats of workspace each pass needs: its vector table, then its packed weights or block sums. */
static int64_t workspace_floats(int pass, const geom_t *g) {
  const int64_t kk = (int64_t)g->kh * g->kw, cg = g->cin / g->groups;
  if (pass == PASS_FORWARD) {
    if (wino_applies(g)) {
      const wino_t p = wino_forward(g);
      return wino_floats(g, &p);
    }
    if (use_oc(g)) return (int64_t)g->cout * cg * kk + kk + 2 * oc_scratch(g);
    plane_map_t m = forward_map(g);
    return vectors_floats(&m) + (int64_t)g->cout * cg * kk;
  }
  if (pass == PASS_BACKWARD_INPUT) {
    if (wino_applies(g)) {
      const wino_t p = wino_backward_input(g);
      return wino_floats(g, &p);
    }
    if (use_il(g)) return (int64_t)g->cout * cg * kk + 2 * il_scratch(g);
    plane_map_t m = backward_input_map(g);
    return vectors_floats(&m) + (int64_t)g->cout * cg * kk;
  }
  if (wino_applies(g)) return 2 * wino_w_scratch(g) + wg_blocks(g) * wino_w_slot(g) + 16;
  if (use_ov(g)) return g->groups * (cg * kk + 1) + 2 * ov_scratch(g) + wg_blocks(g) * ov_slot(g);
  plane_map_t m = weight_map(g);
  return vectors_floats(&m) + wg_blocks(g) * wg_slot(g);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include "transpose16.h"

#define K512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline))
/* The loops over a tile's rows, vectors and columns must unroll for its accumulators to live in registers. */
#define UNROLL _Pragma("GCC unroll 16")

int native_avx512(void) {
  static int cached = -1;
  if (cached < 0) {
    const char *env = getenv("TAPEGRAD_NATIVE_AVX512");
    __builtin_cpu_init();
    cached = __builtin_cpu_supports("avx512f") && !(env && strcmp(env, "0") == 0) ? 1 : 0;
  }
  return cached;
}

static int conv_available(void) { return native_avx512(); }

/* One forward-kind product: `channels` input planes of in_plane elements summed into rows of out_plane. */
typedef struct {
  const vectors_t *vt;
  int64_t in_plane, out_plane;
  int channels;
} nn_ctx_t;

/* MR output rows x NV vectors from v0: acc = bias (or 0) + sum over taps t and channels c of
 * wp[(t channels + c) MR + r] in[c, vector + shift(t)]. */
K512 INLINE void nn_tile(const int MR, const int NV, const nn_ctx_t *T, const float *in, const float *wp,
                         const float *bias, float *out, int v0) {
  __m512 acc[NN_MR][NN_NV];
  UNROLL for (int r = 0; r < MR; r++) {
    __m512 init = bias ? _mm512_set1_ps(bias[r]) : _mm512_setzero_ps();
    UNROLL for (int v = 0; v < NV; v++) acc[r][v] = init;
  }
  const vectors_t *vt = T->vt;
  const int kk = vt->kk, channels = T->channels;
  const int64_t plane = T->in_plane;
  for (int t = 0; t < kk; t++) {
    __mmask16 mk[NN_NV];
    const float *src[NN_NV];
    int any = 0;
    UNROLL for (int v = 0; v < NV; v++) {
      mk[v] = vt->masks[(int64_t)(v0 + v) * kk + t];
      any |= mk[v];
      /* NOTE: may point outside the plane; only the lanes of mk are read */
      src[v] = in + ((int64_t)vt->in_base[v0 + v] + vt->off[t]);
    }
    if (!any) continue;
    const float *w = wp + (int64_t)t * channels * MR;
    for (int c = 0; c < channels; c++, w += MR) {
      __m512 b[NN_NV];
      UNROLL for (int v = 0; v < NV; v++) b[v] = _mm512_maskz_loadu_ps(mk[v], src[v] + c * plane);
      UNROLL for (int r = 0; r < MR; r++) {
        __m512 a = _mm512_set1_ps(w[r]);
        UNROLL for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
      }
    }
  }
  UNROLL for (int r = 0; r < MR; r++)
    UNROLL for (int v = 0; v < NV; v++)
      _mm512_mask_storeu_ps(out + r * T->out_plane + vt->out_base[v0 + v], vt->store[v0 + v], acc[r][v]);
}

/* Vectors ahead whose output lines a forward tile asks for: the hardware prefetchers do not follow the tiles'
 * masked stores here (bench/NOTES-conv.md, "Prefetching the convolutions' streams"). */
#define NN_AHEAD 9

#define NN_CASE(MR, NV) case MR * 5 + NV: nn_tile(MR, NV, T, in, w, b, o, v0); break;
#define NN_CASES(MR) NN_CASE(MR, 3) NN_CASE(MR, 2) NN_CASE(MR, 1)
#define NN_CASES4(MR) NN_CASE(MR, 4) NN_CASES(MR)

/* rows output rows (their packed weights at wp, bias or NULL) over the table's first `count` vectors. */
K512 static void nn_rows(const nn_ctx_t *T, const float *in, const float *wp, const float *bias, float *out, int rows,
                         int count) {
  for (int r0 = 0; r0 < rows; r0 += NN_MR) {
    const int mr = rows - r0 < NN_MR ? rows - r0 : NN_MR;
    const float *w = wp + (int64_t)r0 * T->channels * T->vt->kk;
    const float *b = bias ? bias + r0 : NULL;
    float *o = out + r0 * T->out_plane;
    for (int v0 = 0, nv; v0 < count; v0 += nv) {
      /* tiles of 3 (or 4) vectors, the last ones of 2 or 3 rather than a lone vector (too few accumulators) */
      const int rest = count - v0;
      if (mr <= NN_WIDE_MR) nv = rest >= 6 || rest == 4 ? 4 : rest == 5 ? 3 : rest;
      else nv = rest >= 5 || rest == 3 ? 3 : rest == 4 ? 2 : rest;
      /* the output lines of the tile NN_AHEAD vectors on, for writing */
      for (int v = v0 + NN_AHEAD; v < v0 + NN_AHEAD + nv && v < count; v++)
        for (int r = 0; r < mr; r++) __builtin_prefetch(o + r * T->out_plane + T->vt->out_base[v], 1, 3);
      switch (mr * 5 + nv) {
        NN_CASES(8) NN_CASES(7) NN_CASES4(6) NN_CASES4(5) NN_CASES4(4) NN_CASES4(3) NN_CASES4(2) NN_CASES4(1)
      }
    }
  }
}

/* The per-call context of a forward or input-gradient convolution. */
typedef struct {
  nn_ctx_t nn;
  const float *in, *wp, *bias;
  float *out;
  int groups, rows;           /* rows: output channels per group */
  int64_t in_image, out_image; /* elements per image */
  int batch, images;           /* images: per unit, as in the vector table */
} nn_job_t;

/* Unit u: the images [images (u / groups), ...), group u % groups. */
K512 static void nn_unit(const void *arg, int u, int worker) {
  (void)worker;
  const nn_job_t *J = arg;
  const int chunk = u / J->groups, grp = u - chunk * J->groups, n = chunk * J->images;
  const int images = J->batch - n < J->images ? J->batch - n : J->images;
  const float *in = J->in + n * J->in_image + (int64_t)grp * J->nn.channels * J->nn.in_plane;
  const float *wp = J->wp + (int64_t)grp * J->rows * J->nn.channels * J->nn.vt->kk;
  float *out = J->out + n * J->out_image + (int64_t)grp * J->rows * J->nn.out_plane;
  nn_rows(&J->nn, in, wp, J->bias ? J->bias + grp * J->rows : NULL, out, J->rows, J->nn.vt->count / J->images * images);
}

/* Weights of one group as the forward tiles read them: rows in tiles of NN_MR, each tile [tap][channel][row]. */
static void pack_forward(const float *w, int rows, int channels, int kk, float *wp) {
  for (int r0 = 0; r0 < rows; r0 += NN_MR) {
    const int mr = rows - r0 < NN_MR ? rows - r0 : NN_MR;
    float *tile = wp + (int64_t)r0 * channels * kk;
    for (int t = 0; t < kk; t++)
      for (int c = 0; c < channels; c++)
        for (int r = 0; r < mr; r++) tile[((int64_t)t * channels + c) * mr + r] = w[((int64_t)(r0 + r) * channels + c) * kk + t];
  }
}

/* The input gradient's weights of one group: row c (an input channel), channel o (an output channel), tap
 * t of the flipped kernel = w[o, c, kk - 1 - t]; w is the group's [og, cg, kk] block. */
static void pack_backward_input(const float *w, int og, int cg, int kk, float *wp) {
  for (int r0 = 0; r0 < cg; r0 += NN_MR) {
    const int mr = cg - r0 < NN_MR ? cg - r0 : NN_MR;
    float *tile = wp + (int64_t)r0 * og * kk;
    for (int t = 0; t < kk; t++)
      for (int o = 0; o < og; o++)
        for (int r = 0; r < mr; r++) tile[((int64_t)t * og + o) * mr + r] = w[((int64_t)o * cg + r0 + r) * kk + kk - 1 - t];
  }
}

/* The weight gradient's per-call context. */
typedef struct {
  const vectors_t *vt;
  const float *x, *g;
  float *sums;            /* [blocks][cout * K + cout] */
  int batch, groups, cg, og, K;
  int64_t in_plane, out_plane, x_image, g_image;
  int with_bias, block; /* block: images per unit */
} nt_job_t;

/* MR output channels x NR columns (channel, tap) from column k0, summed over `images` images; the sums go to
 * dst[r * K + s]. */
/* Vectors ahead whose output-gradient lines a position-form weight-gradient tile asks for (bench/NOTES-conv.md,
 * "Prefetching the convolutions' streams"). */
#define NT_AHEAD 4

K512 INLINE void nt_tile(const int MR, const int NR, const nt_job_t *J, const float *x, const float *g, int k0,
                         int images, float *dst) {
  __m512 acc[NT_MR][NT_NR];
  UNROLL for (int r = 0; r < MR; r++)
    UNROLL for (int s = 0; s < NR; s++) acc[r][s] = _mm512_setzero_ps();
  const vectors_t *vt = J->vt;
  const int kk = vt->kk;
  int64_t src[NT_NR];
  int tap[NT_NR];
  UNROLL for (int s = 0; s < NR; s++) {
    const int k = k0 + s, c = k / kk;
    tap[s] = k - c * kk;
    src[s] = c * J->in_plane + vt->off[tap[s]];
  }
  for (int n = 0; n < images; n++) {
    const float *xn = x + n * J->x_image, *gn = g + n * J->g_image;
    for (int v = 0; v < vt->count; v++) {
      const uint16_t *mk = vt->masks + (int64_t)v * kk;
      const __mmask16 store = vt->store[v];
      const float *xv = xn + vt->in_base[v];
      __m512 gv[NT_MR];
      if (v + NT_AHEAD < vt->count)
        UNROLL for (int r = 0; r < MR; r++) _mm_prefetch((const char *)(gn + r * J->out_plane + vt->out_base[v + NT_AHEAD]), _MM_HINT_T0);
      UNROLL for (int r = 0; r < MR; r++) gv[r] = _mm512_maskz_loadu_ps(store, gn + r * J->out_plane + vt->out_base[v]);
      UNROLL for (int s = 0; s < NR; s++) {
        __m512 b = _mm512_maskz_loadu_ps(mk[tap[s]], xv + src[s]);
        UNROLL for (int r = 0; r < MR; r++) acc[r][s] = _mm512_fmadd_ps(gv[r], b, acc[r][s]);
      }
    }
  }
  UNROLL for (int r = 0; r < MR; r++)
    UNROLL for (int s = 0; s < NR; s++) dst[(int64_t)r * J->K + s] = _mm512_reduce_add_ps(acc[r][s]);
}

#define NT_CASE(MR, NR) case MR * 8 + NR: nt_tile(MR, NR, J, x, g, k0, images, dst); break;

/* Unit b: the block of images [b block, ...) into its slot of sums. */
K512 static void nt_unit(const void *arg, int b, int worker) {
  (void)worker;
  const nt_job_t *J = arg;
  const int n0 = b * J->block, images = J->batch - n0 < J->block ? J->batch - n0 : J->block;
  const int cout = J->groups * J->og;
  float *slot = J->sums + (int64_t)b * ((int64_t)cout * J->K + cout);
  for (int grp = 0; grp < J->groups; grp++) {
    const float *x = J->x + n0 * J->x_image + (int64_t)grp * J->cg * J->in_plane;
    for (int o0 = 0, mr; o0 < J->og; o0 += mr) {
      /* tiles of 4 channels x 6 columns; 5 or 6 channels left take one tile of 4 columns (each column's
       * input vector then loaded once for all of them) */
      const int left = J->og - o0;
      mr = left <= NT_MR && left > 4 ? left : left < 4 ? left : 4;
      const int ncols = mr > 4 ? 4 : NT_NR;
      const float *g = J->g + n0 * J->g_image + (int64_t)(grp * J->og + o0) * J->out_plane;
      for (int k0 = 0, nr; k0 < J->K; k0 += nr) {
        nr = J->K - k0 < ncols ? J->K - k0 : ncols;
        float *dst = slot + (int64_t)(grp * J->og + o0) * J->K + k0;
        switch (mr * 8 + nr) {
          NT_CASE(6, 4) NT_CASE(6, 3) NT_CASE(6, 2) NT_CASE(6, 1)
          NT_CASE(5, 4) NT_CASE(5, 3) NT_CASE(5, 2) NT_CASE(5, 1)
          NT_CASE(4, 6) NT_CASE(4, 5) NT_CASE(4, 4) NT_CASE(4, 3) NT_CASE(4, 2) NT_CASE(4, 1)
          NT_CASE(3, 6) NT_CASE(3, 5) NT_CASE(3, 4) NT_CASE(3, 3) NT_CASE(3, 2) NT_CASE(3, 1)
          NT_CASE(2, 6) NT_CASE(2, 5) NT_CASE(2, 4) NT_CASE(2, 3) NT_CASE(2, 2) NT_CASE(2, 1)
          NT_CASE(1, 6) NT_CASE(1, 5) NT_CASE(1, 4) NT_CASE(1, 3) NT_CASE(1, 2) NT_CASE(1, 1)
        }
      }
    }
  }
  if (J->with_bias) {
    float *bias = slot + (int64_t)cout * J->K;
    const int64_t plane = J->out_plane;
    for (int o = 0; o < cout; o++) {
      __m512 acc = _mm512_setzero_ps();
      for (int n = 0; n < images; n++) {
        const float *gp = J->g + (n0 + n) * J->g_image + o * plane;
        int64_t p = 0;
        for (; p + 16 <= plane; p += 16) acc = _mm512_add_ps(acc, _mm512_loadu_ps(gp + p));
        if (p < plane) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps((__mmask16)((1u << (plane - p)) - 1), gp + p));
      }
      bias[o] = _mm512_reduce_add_ps(acc);
    }
  }
}

/* The weight gradient along the output channels: per block of images, the input staged with its padding
 * (so every tap reads a plain scalar) and the group's output gradient transposed to [position][channel];
 * a tile of NT (channel, tap) columns x NV vectors of 16 output channels then sums, over the block's
 * positions, a broadcast input value times a row of the transposed gradient, as a gemm's register tile.
 * Column K reads a staged plane of ones: its sums are the bias gradient. */
typedef struct {
  const float *x, *g;
  float *sums, *scratch;   /* sums: [blocks][ov_slot]; scratch: one staging area per worker */
  const int32_t *off;      /* [groups][K + 1]: column (c, i, j)'s offset c hp wp + i dh wp + j dw from the group's
                            * first staged plane; column K's, the plane of ones */
  int batch, cin, groups, cg, og, ogp, K, h, w, oh, ow, ph, pw, hp, wp, block; /* block: images per unit */
  int64_t scratch_floats, slot_floats;
} ov_job_t;

/* Taps per tile for NV vectors of output channels: about 24 accumulators (12 for one vector). */
#define OV_TAPS(NV) ((NV) == 4 ? 6 : (NV) == 3 ? 8 : 12)

/* Columns k0 .. k0 + count - 1 (count <= NT; the rest of the tile repeats column k0 and is not stored) x NV
 * vectors of output channels, summed over the block's images; the sums go to dst[s][16 v]. */
K512 INLINE void ov_tile(const int NT, const int NV, const ov_job_t *J, const int32_t *offsets, const float *xs,
                         const float *gt, int count, int images, float *dst) {
  __m512 acc[12][4];
  UNROLL for (int s = 0; s < NT; s++)
    UNROLL for (int v = 0; v < NV; v++) acc[s][v] = _mm512_setzero_ps();
  int64_t off[12];
  UNROLL for (int s = 0; s < NT; s++) off[s] = offsets[s < count ? s : 0];
  const int64_t x_image = (int64_t)(J->cin + 1) * J->hp * J->wp, g_image = (int64_t)J->oh * J->ow * J->ogp;
  for (int n = 0; n < images; n++) {
    const float *gp = gt + n * g_image;
    for (int r = 0; r < J->oh; r++) {
      const float *a = xs + n * x_image + (int64_t)r * J->wp;
      for (int c = 0; c < J->ow; c++, a++, gp += J->ogp) {
        __m512 b[4];
        UNROLL for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_ps(gp + 16 * v);
        UNROLL for (int s = 0; s < NT; s++) {
          const __m512 x = _mm512_set1_ps(a[off[s]]);
          UNROLL for (int v = 0; v < NV; v++) acc[s][v] = _mm512_fmadd_ps(x, b[v], acc[s][v]);
        }
      }
    }
  }
  UNROLL for (int s = 0; s < NT; s++)
    if (s < count) UNROLL for (int v = 0; v < NV; v++) _mm512_storeu_ps(dst + (int64_t)s * J->ogp + 16 * v, acc[s][v]);
}

/* Unit b: the block of images [b block, ...) staged in worker's area, its sums into slot b. */
K512 static void ov_unit(const void *arg, int b, int worker) {
  const ov_job_t *J = arg;
  const int n0 = b * J->block, images = J->batch - n0 < J->block ? J->batch - n0 : J->block;
  const int64_t plane = (int64_t)J->h * J->w, L = (int64_t)J->oh * J->ow, pplane = (int64_t)J->hp * J->wp;
  float *xs = J->scratch + worker * J->scratch_floats, *gt = xs + J->block * (int64_t)(J->cin + 1) * pplane;
  float *slot = J->sums + b * J->slot_floats;
  /* the input with its padding: row r, column c of a staged plane is input (r - ph, c - pw) or 0; then ones */
  for (int n = 0; n < images; n++) {
    for (int c = 0; c < J->cin; c++) {
      const float *src = J->x + ((int64_t)(n0 + n) * J->cin + c) * plane;
      float *dst = xs + ((int64_t)n * (J->cin + 1) + c) * pplane;
      const int c0 = J->pw, c1 = J->pw + J->w < J->wp ? J->pw + J->w : J->wp;
      for (int r = 0; r < J->hp; r++) {
        float *row = dst + (int64_t)r * J->wp;
        const int ih = r - J->ph;
        if (ih < 0 || ih >= J->h || c0 >= c1) {
          memset(row, 0, (size_t)J->wp * sizeof(float));
          continue;
        }
        memset(row, 0, (size_t)c0 * sizeof(float));
        memcpy(row + c0, src + (int64_t)ih * J->w, (size_t)(c1 - c0) * sizeof(float));
        memset(row + c1, 0, (size_t)(J->wp - c1) * sizeof(float));
      }
    }
    float *ones = xs + ((int64_t)n * (J->cin + 1) + J->cin) * pplane;
    for (int64_t i = 0; i < pplane; i++) ones[i] = 1.0f;
  }
  const int columns = J->K + 1, nvec = J->ogp / 16;
  for (int grp = 0; grp < J->groups; grp++) {
    /* the group's output gradient as [position][channel], channels padded with zeros to ogp */
    for (int n = 0; n < images; n++) {
      const float *src = J->g + ((int64_t)(n0 + n) * J->groups * J->og + (int64_t)grp * J->og) * L;
      float *dst = gt + n * L * J->ogp;
      for (int o0 = 0; o0 < J->ogp; o0 += 16) {
        const int rows = J->og - o0 < 16 ? J->og - o0 : 16;
        for (int64_t p0 = 0; p0 < L; p0 += 16) {
          /* four blocks ahead: the 16 rows' streams are more than the hardware prefetchers follow here */
          if (p0 + 64 < L)
            for (int o = 0; o < rows; o++) _mm_prefetch((const char *)(src + (o0 + o) * L + p0 + 64), _MM_HINT_T0);
          transpose16_block(src + o0 * L + p0, L, rows, L - p0 < 16 ? (int)(L - p0) : 16, dst + p0 * J->ogp + o0, J->ogp, 0);
        }
      }
    }
    const float *xg = xs + (int64_t)grp * J->cg * pplane;
    const int32_t *offsets = J->off + (int64_t)grp * columns;
    float *dst = slot + (int64_t)grp * columns * J->ogp;
    for (int v0 = 0; v0 < nvec; v0 += 4) {
      const int nv = nvec - v0 < 4 ? nvec - v0 : 4, taps = OV_TAPS(nv);
      for (int k0 = 0; k0 < columns; k0 += taps) {
        const int count = columns - k0 < taps ? columns - k0 : taps;
        const float *gt_v = gt + 16 * v0;
        float *d = dst + (int64_t)k0 * J->ogp + 16 * v0;
        switch (nv) {
          case 4: ov_tile(OV_TAPS(4), 4, J, offsets + k0, xg, gt_v, count, images, d); break;
          case 3: ov_tile(OV_TAPS(3), 3, J, offsets + k0, xg, gt_v, count, images, d); break;
          case 2: ov_tile(OV_TAPS(2), 2, J, offsets + k0, xg, gt_v, count, images, d); break;
          default: ov_tile(OV_TAPS(1), 1, J, offsets + k0, xg, gt_v, count, images, d); break;
        }
      }
    }
  }
}

/* The output-channel forward's per-call context: weights packed [group][tap][channel][output channel]. */
typedef struct {
  const float *x, *wp, *bias;
  float *out, *scratch;
  const int32_t *off; /* [kk]: tap (i, j)'s shift in the staged plane */
  int groups, cg, og, kk, h, w, oh, ow, ph, pw, hp, wp_w, direct, units;
  int64_t scratch_floats;
} oc_job_t;

/* R output rows x W positions of 16 output channels: acc = bias + the sum over taps t (then channels c) of
 * w[t][c] x[c][position + shift(t)], the position form's order; stored to Y as [position][channel]. */
K512 INLINE void oc_tile(const int R, const int W, const oc_job_t *J, const float *xs, int64_t plane, const float *wv,
                         __m512 bias, float *Y) {
  __m512 acc[2][OC_MAX_W];
  UNROLL for (int r = 0; r < R; r++)
    UNROLL for (int s = 0; s < W; s++) acc[r][s] = bias;
  const int wp = J->wp_w, cg = J->cg, og = J->og;
  for (int t = 0; t < J->kk; t++) {
    const float *src = xs + J->off[t];
    const float *w = wv + (int64_t)t * cg * og;
    for (int c = 0; c < cg; c++, src += plane, w += og) {
      const __m512 b = _mm512_loadu_ps(w);
      UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int s = 0; s < W; s++) acc[r][s] = _mm512_fmadd_ps(_mm512_set1_ps(src[r * wp + s]), b, acc[r][s]);
    }
  }
  UNROLL for (int r = 0; r < R; r++)
    UNROLL for (int s = 0; s < W; s++) _mm512_storeu_ps(Y + (int64_t)(r * W + s) * 16, acc[r][s]);
}

#define OC_CASE(R, W) case R * 16 + W: oc_tile(R, W, J, xs + (int64_t)r0 * J->wp_w, plane, wv, b, Y + (int64_t)r0 * W * 16); break;
#define OC_CASES(R) OC_CASE(R, 1) OC_CASE(R, 2) OC_CASE(R, 3) OC_CASE(R, 4) OC_CASE(R, 5) OC_CASE(R, 6) \
  OC_CASE(R, 7) OC_CASE(R, 8) OC_CASE(R, 9) OC_CASE(R, 10) OC_CASE(R, 11) OC_CASE(R, 12)

/* Unit u: image u / groups, group u % groups, in worker's scratch. */
K512 static void oc_unit(const void *arg, int u, int worker) {
  const oc_job_t *J = arg;
  const int n = u / J->groups, grp = u - n * J->groups, cg = J->cg, og = J->og;
  const int64_t in_plane = (int64_t)J->h * J->w, out_plane = (int64_t)J->oh * J->ow;
  const float *x = J->x + ((int64_t)n * J->groups + grp) * cg * in_plane;
  float *out = J->out + ((int64_t)n * J->groups + grp) * og * out_plane;
  float *scratch = J->scratch + worker * J->scratch_floats, *Y = scratch;
  const float *xs = x;
  int64_t plane = in_plane;
  /* this unit's output lines (for writing) and the next unit's input (the caller goes up, the helper down):
   * LeNet conv2's forward 0.97 → 0.85 ms (bench/NOTES-conv.md, "Prefetching the convolutions' streams") */
  for (int64_t q = 0; q < og * out_plane; q += 16) __builtin_prefetch(out + q, 1, 3);
  const int next = worker ? u - 1 : u + 1;
  if (next >= 0 && next < J->units)
    for (int64_t q = 0; q < cg * in_plane; q += 16) _mm_prefetch((const char *)(J->x + (int64_t)next * cg * in_plane + q), _MM_HINT_T1);
  if (!J->direct) {
    float *staged = scratch;
    Y = staged + (int64_t)cg * J->hp * J->wp_w;
    plane = (int64_t)J->hp * J->wp_w;
    for (int c = 0; c < cg; c++)
      for (int r = 0; r < J->hp; r++) {
        float *row = staged + c * plane + (int64_t)r * J->wp_w;
        const int ih = r - J->ph;
        for (int s = 0; s < J->wp_w; s++) {
          const int iw = s - J->pw;
          row[s] = ih >= 0 && ih < J->h && iw >= 0 && iw < J->w ? x[c * in_plane + (int64_t)ih * J->w + iw] : 0.0f;
        }
      }
    xs = staged;
  }
  for (int o0 = 0; o0 < og; o0 += 16) {
    const float *wv = J->wp + (int64_t)grp * J->kk * cg * og + o0;
    const __m512 b = J->bias ? _mm512_loadu_ps(J->bias + grp * og + o0) : _mm512_setzero_ps();
    for (int r0 = 0; r0 < J->oh; r0 += 2) {
      const int rows = J->oh - r0 < 2 ? J->oh - r0 : 2;
      switch (rows * 16 + J->ow) {
        OC_CASES(1) OC_CASES(2)
      }
    }
    /* back to [channel][position] */
    for (int64_t p0 = 0; p0 < out_plane; p0 += 16)
      transpose16_block(Y + p0 * 16, 16, out_plane - p0 < 16 ? (int)(out_plane - p0) : 16, 16, out + (int64_t)o0 * out_plane + p0, out_plane, 1);
  }
}

/* ---- the input gradient with images in the lanes (use_il) ---- */

typedef struct {
  const float *gy, *wp;
  float *gx, *scratch;
  int batch, groups, cg, og, kh, kw, dh, dw, h, w, oh, ow, ph, pw; /* ph, pw: il_ph, il_pw */
  int64_t wp_w, g_image, x_image, scratch_floats;
} il_job_t;

/* MR input channels x NP positions X0 ... of row Y, 16 images a vector: acc = the sum over taps t (then output
 * channels o) of w[t][o][r] gy[o][position through t], skipping the taps whose row lies in the padding or whose
 * columns all do (the rest read the staged zeros: fma(w, 0, acc) is acc), the position form's order. */
K512 INLINE void il_tile(const int MR, const int NP, const il_job_t *J, const float *gs, const float *wt, float *res, int Y, int X0) {
  __m512 acc[NN_MR][4];
  UNROLL for (int r = 0; r < MR; r++)
    UNROLL for (int p = 0; p < NP; p++) acc[r][p] = _mm512_setzero_ps();
  const int og = J->og;
  const int64_t plane = (int64_t)J->oh * J->wp_w * IL_IMAGES;
  for (int i = 0; i < J->kh; i++) {
    const int a = Y + i * J->dh - J->ph;
    if (a < 0 || a >= J->oh) continue;
    for (int j = 0; j < J->kw; j++) {
      const int col = X0 + j * J->dw;
      if (col + NP <= J->pw || col >= J->pw + J->ow) continue;
      const float *w = wt + (int64_t)(i * J->kw + j) * og * MR;
      const float *src = gs + ((int64_t)a * J->wp_w + col) * IL_IMAGES;
      for (int o = 0; o < og; o++, w += MR, src += plane) {
        __m512 b[4];
        UNROLL for (int p = 0; p < NP; p++) b[p] = _mm512_loadu_ps(src + p * IL_IMAGES);
        UNROLL for (int r = 0; r < MR; r++) {
          const __m512 wr = _mm512_set1_ps(w[r]);
          UNROLL for (int p = 0; p < NP; p++) acc[r][p] = _mm512_fmadd_ps(wr, b[p], acc[r][p]);
        }
      }
    }
  }
  const int64_t hw = (int64_t)J->h * J->w;
  UNROLL for (int r = 0; r < MR; r++)
    UNROLL for (int p = 0; p < NP; p++) _mm512_storeu_ps(res + (r * hw + (int64_t)Y * J->w + X0 + p) * IL_IMAGES, acc[r][p]);
}

#define IL_CASE(MR, NP) case MR * 5 + NP: il_tile(MR, NP, J, gs, wt, rr, Y, X0); break;
#define IL_CASES3(MR) IL_CASE(MR, 3) IL_CASE(MR, 2) IL_CASE(MR, 1)
#define IL_CASES4(MR) IL_CASE(MR, 4) IL_CASES3(MR)

/* Unit u: images [16 (u / groups), ...), group u % groups, in worker's scratch. */
K512 static void il_unit(const void *arg, int u, int worker) {
  const il_job_t *J = arg;
  const int blk = u / J->groups, grp = u - blk * J->groups, n0 = blk * IL_IMAGES;
  const int nb = J->batch - n0 < IL_IMAGES ? J->batch - n0 : IL_IMAGES, og = J->og, cg = J->cg;
  float *gs = J->scratch + worker * J->scratch_floats;
  float *res = gs + (int64_t)og * J->oh * J->wp_w * IL_IMAGES;
  /* the output gradient as [channel][row][column][image], zeros in the padding columns and past nb images */
  const float *gy = J->gy + (int64_t)n0 * J->g_image + (int64_t)grp * og * J->oh * J->ow;
  for (int o = 0; o < og; o++)
    for (int a = 0; a < J->oh; a++) {
      float *row = gs + ((int64_t)o * J->oh + a) * J->wp_w * IL_IMAGES;
      memset(row, 0, (size_t)J->pw * IL_IMAGES * sizeof(float));
      memset(row + (int64_t)(J->pw + J->ow) * IL_IMAGES, 0, (size_t)(J->wp_w - J->pw - J->ow) * IL_IMAGES * sizeof(float));
      const float *src = gy + ((int64_t)o * J->oh + a) * J->ow;
      for (int s0 = 0; s0 < J->ow; s0 += 16)
        transpose16_block(src + s0, J->g_image, nb, J->ow - s0 < 16 ? J->ow - s0 : 16, row + (int64_t)(J->pw + s0) * IL_IMAGES, IL_IMAGES, 0);
    }
  const int64_t hw = (int64_t)J->h * J->w;
  for (int r0 = 0; r0 < cg; r0 += NN_MR) {
    const int mr = cg - r0 < NN_MR ? cg - r0 : NN_MR, np_max = mr <= 6 ? 4 : 3;
    const float *wt = J->wp + ((int64_t)grp * cg + r0) * og * J->kh * J->kw;
    float *rr = res + r0 * hw * IL_IMAGES;
    for (int Y = 0; Y < J->h; Y++)
      for (int X0 = 0, np; X0 < J->w; X0 += np) {
        np = J->w - X0 < np_max ? J->w - X0 : np_max;
        switch (mr * 5 + np) {
          IL_CASES3(8) IL_CASES3(7) IL_CASES4(6) IL_CASES4(5) IL_CASES4(4) IL_CASES4(3) IL_CASES4(2) IL_CASES4(1)
        }
      }
  }
  /* back to [image][channel][position] */
  float *gx = J->gx + (int64_t)n0 * J->x_image + (int64_t)grp * cg * hw;
  for (int r = 0; r < cg; r++)
    for (int64_t p0 = 0; p0 < hw; p0 += 16)
      transpose16_block(res + (r * hw + p0) * IL_IMAGES, IL_IMAGES, hw - p0 < 16 ? (int)(hw - p0) : 16, nb, gx + r * hw + p0, J->x_image, 1);
}

/* ---- Winograd F(2x2, 3x3) kernels ---- */

/* U[xi][c][o] = (G g G^T)[xi] for the 3 x 3 kernel g of (produced o, summed c): forward, w[o][c]; input
 * gradient (summed = the convolution's output channels), w[c][o] flipped. G = [1 0 0; .5 .5 .5; .5 -.5 .5;
 * 0 0 1]. */
static void wino_weights(const float *w, int og, int cg, int backward, float *U) {
  const int C = backward ? og : cg, O = backward ? cg : og;
  for (int o = 0; o < O; o++)
    for (int c = 0; c < C; c++) {
      float g[3][3];
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
          g[i][j] = backward ? w[((int64_t)c * cg + o) * 9 + (2 - i) * 3 + (2 - j)] : w[((int64_t)o * cg + c) * 9 + i * 3 + j];
      float gg[4][3]; /* G g */
      for (int j = 0; j < 3; j++) {
        gg[0][j] = g[0][j];
        gg[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
        gg[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
        gg[3][j] = g[2][j];
      }
      for (int i = 0; i < 4; i++) {
        const float u[4] = { gg[i][0], 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]), 0.5f * (gg[i][0] - gg[i][1] + gg[i][2]), gg[i][2] };
        for (int j = 0; j < 4; j++) U[((int64_t)(i * 4 + j) * C + c) * O + o] = u[j];
      }
    }
}

/* M rows t0 .. t0 + MR - 1, columns o0 .. o0 + 16 NV - 1, of one position xi: sum over c of V[t][c] U[c][o]. */
K512 INLINE void wino_tile(const int MR, const int NV, const float *V, const float *U, float *M, int C, int O) {
  __m512 acc[12][4];
  UNROLL for (int r = 0; r < MR; r++)
    UNROLL for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
  for (int c = 0; c < C; c++) {
    __m512 b[4];
    UNROLL for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_ps(U + (int64_t)c * O + 16 * v);
    UNROLL for (int r = 0; r < MR; r++) {
      const __m512 a = _mm512_set1_ps(V[(int64_t)r * C + c]);
      UNROLL for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
  UNROLL for (int r = 0; r < MR; r++)
    UNROLL for (int v = 0; v < NV; v++) _mm512_storeu_ps(M + (int64_t)r * O + 16 * v, acc[r][v]);
}

#define WINO_CASE(MR, NV) case MR * 8 + NV: wino_tile(MR, NV, V + (int64_t)t0 * C, U + o0, M + (int64_t)t0 * O + o0, C, O); break;
/* Rows per tile for NV vectors: about 24 accumulators. */
#define WINO_ROWS(NV) ((NV) == 4 ? 6 : (NV) == 3 ? 8 : 12)

/* M [T][O] = V [T][C] U [C][O] for one position of the transformed tile. */
K512 static void wino_gemm(const float *V, const float *U, float *M, int T, int C, int O) {
  for (int o0 = 0; o0 < O; o0 += 64) {
    const int nv = (O - o0) / 16 < 4 ? (O - o0) / 16 : 4, rows = WINO_ROWS(nv);
    for (int t0 = 0; t0 < T; t0 += rows) {
      const int mr = T - t0 < rows ? T - t0 : rows;
      switch (mr * 8 + nv) {
        WINO_CASE(6, 4) WINO_CASE(5, 4) WINO_CASE(4, 4) WINO_CASE(3, 4) WINO_CASE(2, 4) WINO_CASE(1, 4)
        WINO_CASE(8, 3) WINO_CASE(7, 3) WINO_CASE(6, 3) WINO_CASE(5, 3) WINO_CASE(4, 3) WINO_CASE(3, 3) WINO_CASE(2, 3) WINO_CASE(1, 3)
        WINO_CASE(12, 2) WINO_CASE(11, 2) WINO_CASE(10, 2) WINO_CASE(9, 2) WINO_CASE(8, 2) WINO_CASE(7, 2) WINO_CASE(6, 2)
        WINO_CASE(5, 2) WINO_CASE(4, 2) WINO_CASE(3, 2) WINO_CASE(2, 2) WINO_CASE(1, 2)
        WINO_CASE(12, 1) WINO_CASE(11, 1) WINO_CASE(10, 1) WINO_CASE(9, 1) WINO_CASE(8, 1) WINO_CASE(7, 1) WINO_CASE(6, 1)
        WINO_CASE(5, 1) WINO_CASE(4, 1) WINO_CASE(3, 1) WINO_CASE(2, 1) WINO_CASE(1, 1)
      }
    }
  }
}

typedef struct {
  wino_t p;
  const float *in, *U, *bias;
  float *out, *scratch;
  int groups;
  int64_t in_image, out_image, scratch_floats; /* in_image, out_image: elements per image */
} wino_job_t;

/* staged[(r wd + s) C + c] = in[c][r - ph][s - pw], or 0 outside the input: `C` planes of in_h x in_w as
 * [position][channel] on a grid of hs x wd (16 x 16 register transposes). */
K512 static void wino_stage(const float *in, int in_h, int in_w, int C, int ph, int pw, int hs, int wd, float *staged) {
  const int64_t in_plane = (int64_t)in_h * in_w;
  memset(staged, 0, (size_t)hs * wd * C * sizeof(float));
  const int iw0 = pw < 0 ? -pw : 0, iw1 = wd - pw < in_w ? wd - pw : in_w;
  for (int r = ph > 0 ? ph : 0; r < hs && r - ph < in_h; r++) {
    const int ih = r - ph;
    if (ih < 0) continue;
    /* two rows ahead, every channel's: the hardware prefetchers do not follow these C streams here
     * (bench/NOTES-conv.md, "Prefetching the convolutions' streams") */
    if (ih + 2 < in_h)
      for (int c = 0; c < C; c++) {
        const char *row = (const char *)(in + (int64_t)c * in_plane + (int64_t)(ih + 2) * in_w);
        _mm_prefetch(row, _MM_HINT_T0);
        _mm_prefetch(row + (int64_t)in_w * sizeof(float) - 1, _MM_HINT_T0);
      }
    for (int iw = iw0; iw < iw1; iw += 16) {
      const int count = iw1 - iw < 16 ? iw1 - iw : 16;
      for (int c0 = 0; c0 < C; c0 += 16)
        transpose16_block(in + (int64_t)c0 * in_plane + (int64_t)ih * in_w + iw, in_plane, 16, count,
                     staged + ((int64_t)r * wd + iw + pw) * C + c0, C, 1);
    }
  }
}

/* V[xi][t][c] (t from block 0, rows `stride` blocks apart per xi) = B^T d B of every 4 x 4 patch of the staged
 * input at (2 bh, 2 bw), 16 channels at a time; B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. */
K512 static void wino_input_transform(const float *staged, const wino_t *p, int C, float *V, int64_t stride) {
  for (int bh = 0; bh < p->th; bh++)
    for (int bw = 0; bw < p->tw; bw++) {
      const int64_t t = (int64_t)bh * p->tw + bw;
      for (int c0 = 0; c0 < C; c0 += 16) {
        __m512 d[4][4], e[4][4];
        UNROLL for (int i = 0; i < 4; i++)
          UNROLL for (int j = 0; j < 4; j++) d[i][j] = _mm512_loadu_ps(staged + ((int64_t)(2 * bh + i) * p->wd + 2 * bw + j) * C + c0);
        UNROLL for (int j = 0; j < 4; j++) {
          e[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
          e[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
          e[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
          e[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
        }
        UNROLL for (int i = 0; i < 4; i++) {
          const __m512 v[4] = { _mm512_sub_ps(e[i][0], e[i][2]), _mm512_add_ps(e[i][1], e[i][2]),
                                _mm512_sub_ps(e[i][2], e[i][1]), _mm512_sub_ps(e[i][1], e[i][3]) };
          UNROLL for (int j = 0; j < 4; j++) _mm512_storeu_ps(V + ((int64_t)(i * 4 + j) * stride + t) * C + c0, v[j]);
        }
      }
    }
}

/* Unit u: image u / groups, group u % groups, in worker's scratch. */
K512 static void wino_unit(const void *arg, int u, int worker) {
  const wino_job_t *J = arg;
  const wino_t *p = &J->p;
  const int n = u / J->groups, grp = u - n * J->groups, C = p->C, O = p->O;
  const int64_t T = (int64_t)p->th * p->tw, in_plane = (int64_t)p->in_h * p->in_w, out_plane = (int64_t)p->out_h * p->out_w;
  const float *in = J->in + n * J->in_image + (int64_t)grp * C * in_plane;
  const float *U = J->U + (int64_t)grp * 16 * C * O;
  float *out = J->out + n * J->out_image + (int64_t)grp * O * out_plane;
  float *staged = J->scratch + worker * J->scratch_floats;
  float *V = staged + (int64_t)p->hs * p->wd * C, *M = V + 16 * T * C, *Y = M + 16 * T * O;
  const int yw = 2 * p->tw;

  wino_stage(in, p->in_h, p->in_w, C, p->ph, p->pw, p->hs, p->wd, staged);
  wino_input_transform(staged, p, C, V, T);

  for (int xi = 0; xi < 16; xi++) wino_gemm(V + xi * T * C, U + (int64_t)xi * C * O, M + xi * T * O, (int)T, C, O);

  /* Y = A^T m A (+ bias) for every block and 16 output channels; A^T = [1 1 1 0; 0 1 -1 -1] */
  for (int bh = 0; bh < p->th; bh++)
    for (int bw = 0; bw < p->tw; bw++) {
      const int64_t t = (int64_t)bh * p->tw + bw;
      for (int o0 = 0; o0 < O; o0 += 16) {
        __m512 m[4][4], a[2][4];
        UNROLL for (int i = 0; i < 4; i++)
          UNROLL for (int j = 0; j < 4; j++) m[i][j] = _mm512_loadu_ps(M + ((int64_t)(i * 4 + j) * T + t) * O + o0);
        UNROLL for (int j = 0; j < 4; j++) {
          a[0][j] = _mm512_add_ps(_mm512_add_ps(m[0][j], m[1][j]), m[2][j]);
          a[1][j] = _mm512_sub_ps(_mm512_sub_ps(m[1][j], m[2][j]), m[3][j]);
        }
        const __m512 b = J->bias ? _mm512_loadu_ps(J->bias + grp * O + o0) : _mm512_setzero_ps();
        UNROLL for (int i = 0; i < 2; i++) {
          const __m512 y0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a[i][0], a[i][1]), a[i][2]), b);
          const __m512 y1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(a[i][1], a[i][2]), a[i][3]), b);
          _mm512_storeu_ps(Y + ((int64_t)(2 * bh + i) * yw + 2 * bw) * O + o0, y0);
          _mm512_storeu_ps(Y + ((int64_t)(2 * bh + i) * yw + 2 * bw + 1) * O + o0, y1);
        }
      }
    }

  /* back to [channel][position] for the output rows and columns that exist */
  for (int r = 0; r < p->out_h; r++) {
    /* the output rows two rows ahead, for writing (as the staging's reads) */
    if (r + 2 < p->out_h)
      for (int o = 0; o < O; o++) {
        char *row = (char *)(out + (int64_t)o * out_plane + (int64_t)(r + 2) * p->out_w);
        __builtin_prefetch(row, 1, 3);
        __builtin_prefetch(row + (int64_t)p->out_w * sizeof(float) - 1, 1, 3);
      }
    for (int s0 = 0; s0 < p->out_w; s0 += 16) {
      const int count = p->out_w - s0 < 16 ? p->out_w - s0 : 16;
      for (int o0 = 0; o0 < O; o0 += 16)
        transpose16_block(Y + ((int64_t)r * yw + s0) * O + o0, O, count, 16, out + (int64_t)o0 * out_plane + (int64_t)r * p->out_w + s0,
                     out_plane, 1);
    }
  }
}

/* The weight gradient as F(3x3, 2x2), the transposed algorithm of F(2x2, 3x3): with d each 4 x 4 input patch
 * (as in the forward) and g the 2 x 2 block of output gradients at it, dW = G^T [sum over blocks of
 * (A g A^T) . (B^T d B)] G, the sum over blocks (and images) taken first, as 16 gemms
 * S[xi][o][c] += GY[xi][t][o] D[xi][t][c] per block of images; A = [1 0; 1 1; 1 -1; 0 -1],
 * G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1]. */
typedef struct {
  wino_t p;
  const float *x, *g;
  float *sums, *scratch;
  int batch, groups, block, with_bias;
  int64_t x_image, g_image, scratch_floats, slot_floats;
} wino_w_job_t;

/* S rows o0 .. o0 + MR - 1 (GY's columns), columns c0 .. c0 + 16 NV - 1, of one position xi, plus (or, on the
 * first image, set to) the sum over the image's T blocks of GY[t][o] D[t][c]. */
K512 INLINE void wino_w_tile(const int MR, const int NV, const float *GY, const float *D, float *S, int T, int C, int O, int first) {
  __m512 acc[12][4];
  UNROLL for (int r = 0; r < MR; r++)
    UNROLL for (int v = 0; v < NV; v++) acc[r][v] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(S + (int64_t)r * C + 16 * v);
  for (int t = 0; t < T; t++) {
    __m512 b[4];
    UNROLL for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_ps(D + (int64_t)t * C + 16 * v);
    UNROLL for (int r = 0; r < MR; r++) {
      const __m512 a = _mm512_set1_ps(GY[(int64_t)t * O + r]);
      UNROLL for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
  UNROLL for (int r = 0; r < MR; r++)
    UNROLL for (int v = 0; v < NV; v++) _mm512_storeu_ps(S + (int64_t)r * C + 16 * v, acc[r][v]);
}

#define WINO_W_CASE(MR, NV) case MR * 8 + NV: wino_w_tile(MR, NV, GY + o0, D + c0, S + (int64_t)o0 * C + c0, T, C, O, first); break;

K512 static void wino_w_gemm(const float *GY, const float *D, float *S, int T, int C, int O, int first) {
  for (int c0 = 0; c0 < C; c0 += 64) {
    const int nv = (C - c0) / 16 < 4 ? (C - c0) / 16 : 4, rows = WINO_ROWS(nv);
    for (int o0 = 0; o0 < O; o0 += rows) {
      const int mr = O - o0 < rows ? O - o0 : rows;
      switch (mr * 8 + nv) {
        WINO_W_CASE(6, 4) WINO_W_CASE(5, 4) WINO_W_CASE(4, 4) WINO_W_CASE(3, 4) WINO_W_CASE(2, 4) WINO_W_CASE(1, 4)
        WINO_W_CASE(8, 3) WINO_W_CASE(7, 3) WINO_W_CASE(6, 3) WINO_W_CASE(5, 3) WINO_W_CASE(4, 3) WINO_W_CASE(3, 3)
        WINO_W_CASE(2, 3) WINO_W_CASE(1, 3)
        WINO_W_CASE(12, 2) WINO_W_CASE(11, 2) WINO_W_CASE(10, 2) WINO_W_CASE(9, 2) WINO_W_CASE(8, 2) WINO_W_CASE(7, 2)
        WINO_W_CASE(6, 2) WINO_W_CASE(5, 2) WINO_W_CASE(4, 2) WINO_W_CASE(3, 2) WINO_W_CASE(2, 2) WINO_W_CASE(1, 2)
        WINO_W_CASE(12, 1) WINO_W_CASE(11, 1) WINO_W_CASE(10, 1) WINO_W_CASE(9, 1) WINO_W_CASE(8, 1) WINO_W_CASE(7, 1)
        WINO_W_CASE(6, 1) WINO_W_CASE(5, 1) WINO_W_CASE(4, 1) WINO_W_CASE(3, 1) WINO_W_CASE(2, 1) WINO_W_CASE(1, 1)
      }
    }
  }
}

/* Unit b: the block of images [b block, ...) into its slot: per group S [16][O][C], then the bias sums. */
K512 static void wino_w_unit(const void *arg, int b, int worker) {
  const wino_w_job_t *J = arg;
  const wino_t *p = &J->p;
  const int C = p->C, O = p->O, n0 = b * J->block, images = J->batch - n0 < J->block ? J->batch - n0 : J->block;
  const int64_t T = (int64_t)p->th * p->tw, x_plane = (int64_t)p->in_h * p->in_w, g_plane = (int64_t)p->out_h * p->out_w;
  const int gw = 2 * p->tw;
  float *staged = J->scratch + worker * J->scratch_floats;
  float *D = staged + (int64_t)p->hs * p->wd * C, *staged_g = D + 16 * T * C, *GY = staged_g + 4 * T * O;
  float *slot = J->sums + b * J->slot_floats;
  for (int grp = 0; grp < J->groups; grp++) {
    float *S = slot + (int64_t)grp * 16 * O * C;
    for (int n = 0; n < images; n++) {
      const float *x = J->x + (n0 + n) * J->x_image + (int64_t)grp * C * x_plane;
      const float *g = J->g + (n0 + n) * J->g_image + (int64_t)grp * O * g_plane;
      wino_stage(x, p->in_h, p->in_w, C, p->ph, p->pw, p->hs, p->wd, staged);
      wino_input_transform(staged, p, C, D, T);
      /* the output gradient as [position][channel] on the blocks' 2 th x 2 tw grid, zeros past the plane */
      wino_stage(g, p->out_h, p->out_w, O, 0, 0, 2 * p->th, gw, staged_g);
      for (int bh = 0; bh < p->th; bh++)
        for (int bw = 0; bw < p->tw; bw++) {
          const int64_t t = (int64_t)bh * p->tw + bw;
          for (int o0 = 0; o0 < O; o0 += 16) {
            __m512 q[2][2], e[4][2];
            UNROLL for (int i = 0; i < 2; i++)
              UNROLL for (int j = 0; j < 2; j++) q[i][j] = _mm512_loadu_ps(staged_g + ((int64_t)(2 * bh + i) * gw + 2 * bw + j) * O + o0);
            UNROLL for (int j = 0; j < 2; j++) {
              e[0][j] = q[0][j];
              e[1][j] = _mm512_add_ps(q[0][j], q[1][j]);
              e[2][j] = _mm512_sub_ps(q[0][j], q[1][j]);
              e[3][j] = _mm512_sub_ps(_mm512_setzero_ps(), q[1][j]);
            }
            UNROLL for (int i = 0; i < 4; i++) {
              const __m512 u[4] = { e[i][0], _mm512_add_ps(e[i][0], e[i][1]), _mm512_sub_ps(e[i][0], e[i][1]),
                                    _mm512_sub_ps(_mm512_setzero_ps(), e[i][1]) };
              UNROLL for (int j = 0; j < 4; j++) _mm512_storeu_ps(GY + ((int64_t)(i * 4 + j) * T + t) * O + o0, u[j]);
            }
          }
        }
      for (int xi = 0; xi < 16; xi++)
        wino_w_gemm(GY + xi * T * O, D + xi * T * C, S + (int64_t)xi * O * C, (int)T, C, O, n == 0);
    }
  }
  if (J->with_bias) {
    float *bias = slot + (int64_t)J->groups * 16 * O * C;
    const int cout = J->groups * O;
    for (int o = 0; o < cout; o++) {
      __m512 acc = _mm512_setzero_ps();
      for (int n = 0; n < images; n++) {
        const float *gp = J->g + (n0 + n) * J->g_image + o * g_plane;
        int64_t q = 0;
        for (; q + 16 <= g_plane; q += 16) acc = _mm512_add_ps(acc, _mm512_loadu_ps(gp + q));
        if (q < g_plane) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps((__mmask16)((1u << (g_plane - q)) - 1), gp + q));
      }
      bias[o] = _mm512_reduce_add_ps(acc);
    }
  }
}

#else /* no AVX-512 kernels on this architecture or compiler: src/kernels/conv.ts keeps its own paths */

int native_avx512(void) { return 0; }
static int conv_available(void) { return 0; }
typedef struct { int unused; } nn_job_t;
typedef struct { int unused; } nt_job_t;
static void nn_unit(const void *arg, int u, int worker) { (void)arg; (void)u; (void)worker; }
static void nt_unit(const void *arg, int b, int worker) { (void)arg; (void)b; (void)worker; }
static void ov_unit(const void *arg, int b, int worker) { (void)arg; (void)b; (void)worker; }
typedef struct { int unused; } ov_job_t;
static void wino_unit(const void *arg, int u, int worker) { (void)arg; (void)u; (void)worker; }
typedef struct { int unused; } wino_job_t;
static void oc_unit(const void *arg, int u, int worker) { (void)arg; (void)u; (void)worker; }
typedef struct { int unused; } oc_job_t;
static void wino_w_unit(const void *arg, int u, int worker) { (void)arg; (void)u; (void)worker; }
typedef struct { int unused; } wino_w_job_t;
static void il_unit(const void *arg, int u, int worker) { (void)arg; (void)u; (void)worker; }
typedef struct { int unused; } il_job_t;

#endif

/* The weight gradient's block sums added in block order into block 0's slot: sums[i] = ((s_0 + s_1) + s_2) ...
 * for each of the slot's first n floats, whichever thread computed each block. Runs of RUN floats stay in the
 * L1 cache while the blocks are added (one pass over the slots instead of a strided walk per weight). */
static void sum_blocks(float *sums, int64_t slot, int blocks, int64_t n) {
  enum { RUN = 512 };
  for (int64_t i0 = 0; i0 < n; i0 += RUN) {
    const int64_t len = n - i0 < RUN ? n - i0 : RUN;
    float *dst = sums + i0;
    for (int b = 1; b < blocks; b++) {
      const float *src = sums + b * slot + i0;
      for (int64_t i = 0; i < len; i++) dst[i] += src[i];
    }
  }
}

/* ------------------------------------------------------------------------------------------------------ */
/* Node-API wrappers                                                                                       */

static const char WHO[] = "tapegrad native conv2d";

/* Reads and checks the Int32Array geometry; 0 with a JavaScript error when it is not a sane stride-1 one. */
static int read_geometry(napi_env env, napi_value v, geom_t *g) {
  bool typed = false;
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_is_typedarray(env, v, &typed) != napi_ok || !typed ||
      napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok || type != napi_int32_array || length != 14) {
    napi_throw_type_error(env, NULL, "tapegrad native conv2d: the geometry must be an Int32Array of 14 sizes");
    return 0;
  }
  const int32_t *a = data;
  *g = (geom_t){ a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13] };
  const int positive = g->batch >= 0 && g->cin > 0 && g->h > 0 && g->w > 0 && g->cout > 0 && g->kh > 0 && g->kw > 0 &&
                       g->ph >= 0 && g->pw >= 0 && g->dh > 0 && g->dw > 0 && g->groups > 0 && g->oh > 0 && g->ow > 0;
  /* every index inside one image (and a plane's shifted reads) must fit 32 bits */
  const int fits = positive && (int64_t)g->cin * g->h * g->w < INT32_MAX / 2 && (int64_t)g->cout * g->oh * g->ow < INT32_MAX / 2 &&
                   (int64_t)g->dh * g->kh * (g->w + g->ow) < INT32_MAX / 4 && g->ph < INT32_MAX / 4 && g->pw < INT32_MAX / 4;
  if (!fits || g->cin % g->groups != 0 || g->cout % g->groups != 0) {
    napi_throw_range_error(env, NULL, "tapegrad native conv2d: the geometry's sizes are not a valid stride-1 convolution");
    return 0;
  }
  return 1;
}

/* A Float32Array operand of at least `extent` elements, or NULL with an error (a JavaScript null gives
 * NULL without one when `nullable`; *is_null says which). */
static float *operand(napi_env env, napi_value v, int64_t extent, const char *name, int nullable, int *is_null) {
  napi_valuetype t;
  if (is_null) *is_null = 0;
  if (nullable && napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined)) {
    if (is_null) *is_null = 1;
    return NULL;
  }
  return float_operand(env, v, napi_float32_array, 0, extent, WHO, name, "geometry");
}

#define CONV_ARGS(count)                                                                           \
  size_t argc = count;                                                                             \
  napi_value argv[count];                                                                          \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != count) {          \
    napi_throw_type_error(env, NULL, "tapegrad native conv2d: expected " #count " arguments");     \
    return NULL;                                                                                   \
  }

static int check_available(napi_env env) {
  if (conv_available()) return 1;
  napi_throw_error(env, NULL, "tapegrad native conv2d: this CPU has no AVX-512 (check convAvailable first)");
  return 0;
}

static int split_for(int64_t multiply_adds) {
  return native_max_threads() > 1 && multiply_adds >= native_split_min_work();
}

/* convWorkspace(pass, geometry): floats of workspace the pass needs. */
static napi_value conv_workspace(napi_env env, napi_callback_info info) {
  CONV_ARGS(2)
  int32_t pass;
  geom_t g;
  if (napi_get_value_int32(env, argv[0], &pass) != napi_ok || pass < 0 || pass > 2) {
    napi_throw_range_error(env, NULL, "tapegrad native conv2d: pass must be 0 (forward), 1 (input gradient) or 2 (weight gradient)");
    return NULL;
  }
  if (!read_geometry(env, argv[1], &g)) return NULL;
  napi_value out;
  if (napi_create_double(env, (double)workspace_floats(pass, &g), &out) != napi_ok) return NULL;
  return out;
}

static napi_value conv_forward(napi_env env, napi_callback_info info) {
  CONV_ARGS(6)
  geom_t g;
  if (!check_available(env) || !read_geometry(env, argv[0], &g)) return NULL;
  const int cg = g.cin / g.groups, og = g.cout / g.groups, kk = g.kh * g.kw;
  int no_bias;
  const float *x = operand(env, argv[1], (int64_t)g.batch * g.cin * g.h * g.w, "x", 0, NULL);
  const float *w = x ? operand(env, argv[2], (int64_t)g.cout * cg * kk, "weight", 0, NULL) : NULL;
  const float *bias = w ? operand(env, argv[3], g.cout, "bias", 1, &no_bias) : NULL;
  if (!w || (!bias && !no_bias)) return NULL;
  float *out = operand(env, argv[4], (int64_t)g.batch * g.cout * g.oh * g.ow, "out", 0, NULL);
  float *ws = out ? operand(env, argv[5], workspace_floats(PASS_FORWARD, &g), "workspace", 0, NULL) : NULL;
  if (!ws || g.batch == 0) return NULL;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (wino_applies(&g)) {
    const wino_t p = wino_forward(&g);
    for (int grp = 0; grp < g.groups; grp++) wino_weights(w + (int64_t)grp * og * cg * kk, og, cg, 0, ws + (int64_t)grp * 16 * cg * og);
    wino_job_t job = { p, x, ws, bias, out, ws + (int64_t)g.groups * 16 * cg * og, g.groups, (int64_t)g.cin * g.h * g.w,
                       (int64_t)g.cout * g.oh * g.ow, wino_scratch(&p) };
    helper_units(wino_unit, &job, g.batch * g.groups, split_for((int64_t)g.batch * g.cout * g.oh * g.ow * cg * kk));
    return NULL;
  }
  if (use_oc(&g)) {
    /* weights as [group][tap][channel][output channel], then the taps' shifts, then the workers' scratch */
    float *wp = ws;
    for (int grp = 0; grp < g.groups; grp++)
      for (int o = 0; o < og; o++)
        for (int c = 0; c < cg; c++)
          for (int t = 0; t < kk; t++)
            wp[(((int64_t)grp * kk + t) * cg + c) * og + o] = w[(((int64_t)grp * og + o) * cg + c) * kk + t];
    int32_t *off = (int32_t *)(wp + (int64_t)g.cout * cg * kk);
    const int hp = oc_direct(&g) ? g.h : (int)ov_hp(&g), wpw = oc_direct(&g) ? g.w : (int)ov_wp(&g);
    for (int i = 0; i < g.kh; i++)
      for (int j = 0; j < g.kw; j++) off[i * g.kw + j] = i * g.dh * wpw + j * g.dw;
    oc_job_t job = { x, wp, bias, out, (float *)(off + kk), off, g.groups, cg, og, kk, g.h, g.w, g.oh, g.ow, g.ph, g.pw,
                     hp, wpw, oc_direct(&g), g.batch * g.groups, oc_scratch(&g) };
    helper_units(oc_unit, &job, g.batch * g.groups, split_for((int64_t)g.batch * g.cout * g.oh * g.ow * cg * kk));
    return NULL;
  }
  plane_map_t m = forward_map(&g);
  vectors_t vt;
  build_vectors(&m, ws, &vt);
  float *wp = ws + vectors_floats(&m);
  for (int grp = 0; grp < g.groups; grp++) pack_forward(w + (int64_t)grp * og * cg * kk, og, cg, kk, wp + (int64_t)grp * og * cg * kk);
  nn_job_t job = { { &vt, (int64_t)g.h * g.w, (int64_t)g.oh * g.ow, cg }, x, wp, bias, out, g.groups, og,
                   (int64_t)g.cin * g.h * g.w, (int64_t)g.cout * g.oh * g.ow, g.batch, m.images };
  const int chunks = (g.batch + m.images - 1) / m.images;
  helper_units(nn_unit, &job, chunks * g.groups, split_for((int64_t)g.batch * g.cout * g.oh * g.ow * cg * kk));
#endif
  return NULL;
}

static napi_value conv_backward_input(napi_env env, napi_callback_info info) {
  CONV_ARGS(5)
  geom_t g;
  if (!check_available(env) || !read_geometry(env, argv[0], &g)) return NULL;
  const int cg = g.cin / g.groups, og = g.cout / g.groups, kk = g.kh * g.kw;
  const float *gy = operand(env, argv[1], (int64_t)g.batch * g.cout * g.oh * g.ow, "gradOut", 0, NULL);
  const float *w = gy ? operand(env, argv[2], (int64_t)g.cout * cg * kk, "weight", 0, NULL) : NULL;
  float *gx = w ? operand(env, argv[3], (int64_t)g.batch * g.cin * g.h * g.w, "gradInput", 0, NULL) : NULL;
  float *ws = gx ? operand(env, argv[4], workspace_floats(PASS_BACKWARD_INPUT, &g), "workspace", 0, NULL) : NULL;
  if (!ws || g.batch == 0) return NULL;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (wino_applies(&g)) {
    const wino_t p = wino_backward_input(&g);
    for (int grp = 0; grp < g.groups; grp++) wino_weights(w + (int64_t)grp * og * cg * kk, og, cg, 1, ws + (int64_t)grp * 16 * cg * og);
    wino_job_t job = { p, gy, ws, NULL, gx, ws + (int64_t)g.groups * 16 * cg * og, g.groups, (int64_t)g.cout * g.oh * g.ow,
                       (int64_t)g.cin * g.h * g.w, wino_scratch(&p) };
    helper_units(wino_unit, &job, g.batch * g.groups, split_for((int64_t)g.batch * g.cout * g.oh * g.ow * cg * kk));
    return NULL;
  }
  if (use_il(&g)) {
    for (int grp = 0; grp < g.groups; grp++)
      pack_backward_input(w + (int64_t)grp * og * cg * kk, og, cg, kk, ws + (int64_t)grp * cg * og * kk);
    il_job_t job = { gy, ws, gx, ws + (int64_t)g.cout * cg * kk, g.batch, g.groups, cg, og, g.kh, g.kw, g.dh, g.dw, g.h, g.w,
                     g.oh, g.ow, il_ph(&g), il_pw(&g), il_wp(&g), (int64_t)g.cout * g.oh * g.ow, (int64_t)g.cin * g.h * g.w,
                     il_scratch(&g) };
    const int blocks = (g.batch + IL_IMAGES - 1) / IL_IMAGES;
    helper_units(il_unit, &job, blocks * g.groups, split_for((int64_t)g.batch * g.cout * g.oh * g.ow * cg * kk));
    return NULL;
  }
  plane_map_t m = backward_input_map(&g);
  vectors_t vt;
  build_vectors(&m, ws, &vt);
  float *wp = ws + vectors_floats(&m);
  for (int grp = 0; grp < g.groups; grp++)
    pack_backward_input(w + (int64_t)grp * og * cg * kk, og, cg, kk, wp + (int64_t)grp * cg * og * kk);
  nn_job_t job = { { &vt, (int64_t)g.oh * g.ow, (int64_t)g.h * g.w, og }, gy, wp, NULL, gx, g.groups, cg,
                   (int64_t)g.cout * g.oh * g.ow, (int64_t)g.cin * g.h * g.w, g.batch, m.images };
  const int chunks = (g.batch + m.images - 1) / m.images;
  helper_units(nn_unit, &job, chunks * g.groups, split_for((int64_t)g.batch * g.cout * g.oh * g.ow * cg * kk));
#endif
  return NULL;
}

static napi_value conv_backward_weight(napi_env env, napi_callback_info info) {
  CONV_ARGS(7)
  geom_t g;
  if (!check_available(env) || !read_geometry(env, argv[0], &g)) return NULL;
  const int cg = g.cin / g.groups, og = g.cout / g.groups, kk = g.kh * g.kw, K = cg * kk;
  int no_bias;
  bool accumulate;
  const float *x = operand(env, argv[1], (int64_t)g.batch * g.cin * g.h * g.w, "x", 0, NULL);
  const float *gy = x ? operand(env, argv[2], (int64_t)g.batch * g.cout * g.oh * g.ow, "gradOut", 0, NULL) : NULL;
  float *gw = gy ? operand(env, argv[3], (int64_t)g.cout * K, "gradWeight", 0, NULL) : NULL;
  float *gb = gw ? operand(env, argv[4], g.cout, "gradBias", 1, &no_bias) : NULL;
  if (!gw || (!gb && !no_bias)) return NULL;
  float *ws = operand(env, argv[5], workspace_floats(PASS_BACKWARD_WEIGHT, &g), "workspace", 0, NULL);
  if (!ws) return NULL;
  if (napi_get_value_bool(env, argv[6], &accumulate) != napi_ok) {
    napi_throw_type_error(env, NULL, "tapegrad native conv2d: accumulate must be a boolean");
    return NULL;
  }
  const int64_t size = (int64_t)g.cout * K;
  if (g.batch == 0) {
    if (!accumulate) {
      memset(gw, 0, (size_t)size * sizeof(float));
      if (gb) memset(gb, 0, (size_t)g.cout * sizeof(float));
    }
    return NULL;
  }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  const int blocks = (int)wg_blocks(&g);
  const int64_t macs = (int64_t)g.batch * g.cout * g.oh * g.ow * K;
  if (wino_applies(&g)) {
    const wino_t p = wino_forward(&g);
    float *scratch = ws, *sums = ws + 2 * wino_w_scratch(&g);
    wino_w_job_t job = { p, x, gy, sums, scratch, g.batch, g.groups, (int)wg_images(&g), gb != NULL, (int64_t)g.cin * g.h * g.w,
                         (int64_t)g.cout * g.oh * g.ow, wino_w_scratch(&g), wino_w_slot(&g) };
    helper_units(wino_w_unit, &job, blocks, split_for(macs));
    /* the blocks' sums in block order, then dW = G^T S G */
    const int64_t per_group = (int64_t)16 * og * cg;
    sum_blocks(sums, wino_w_slot(&g), blocks, g.groups * per_group + (gb ? g.cout : 0));
    for (int grp = 0; grp < g.groups; grp++)
      for (int o = 0; o < og; o++)
        for (int c = 0; c < cg; c++) {
          float s4[4][4], r3[3][4];
          for (int xi = 0; xi < 16; xi++) s4[xi / 4][xi % 4] = sums[grp * per_group + ((int64_t)xi * og + o) * cg + c];
          for (int j = 0; j < 4; j++) {
            r3[0][j] = s4[0][j] + 0.5f * (s4[1][j] + s4[2][j]);
            r3[1][j] = 0.5f * (s4[1][j] - s4[2][j]);
            r3[2][j] = 0.5f * (s4[1][j] + s4[2][j]) + s4[3][j];
          }
          float *dst = gw + ((int64_t)(grp * og + o) * cg + c) * 9;
          for (int i = 0; i < 3; i++) {
            const float w3[3] = { r3[i][0] + 0.5f * (r3[i][1] + r3[i][2]), 0.5f * (r3[i][1] - r3[i][2]),
                                  0.5f * (r3[i][1] + r3[i][2]) + r3[i][3] };
            for (int j = 0; j < 3; j++) dst[i * 3 + j] = accumulate ? dst[i * 3 + j] + w3[j] : w3[j];
          }
        }
    if (gb) {
      const float *bias = sums + g.groups * per_group;
      for (int o = 0; o < g.cout; o++) gb[o] = accumulate ? gb[o] + bias[o] : bias[o];
    }
    return NULL;
  }
  if (use_ov(&g)) {
    const int hp = (int)ov_hp(&g), wp = (int)ov_wp(&g), ogp = (int)ov_ogp(&g), columns = K + 1;
    int32_t *off = (int32_t *)ws;
    for (int grp = 0; grp < g.groups; grp++) {
      int32_t *o = off + (int64_t)grp * columns;
      for (int c = 0; c < cg; c++)
        for (int i = 0; i < g.kh; i++)
          for (int j = 0; j < g.kw; j++) o[(c * g.kh + i) * g.kw + j] = (c * hp + i * g.dh) * wp + j * g.dw;
      o[K] = (g.cin - grp * cg) * hp * wp; /* the plane of ones after the image's channels */
    }
    float *scratch = ws + (int64_t)g.groups * columns;
    float *sums = scratch + 2 * ov_scratch(&g);
    ov_job_t job = { x, gy, sums, scratch, off, g.batch, g.cin, g.groups, cg, og, ogp, K, g.h, g.w, g.oh, g.ow, g.ph, g.pw,
                     hp, wp, (int)wg_images(&g), ov_scratch(&g), ov_slot(&g) };
    helper_units(ov_unit, &job, blocks, split_for(macs));
    sum_blocks(sums, ov_slot(&g), blocks, (int64_t)g.groups * columns * ogp);
    for (int grp = 0; grp < g.groups; grp++)
      for (int k = 0; k <= K; k++)
        for (int o = 0; o < og; o++) {
          const float s = sums[((int64_t)grp * columns + k) * ogp + o];
          float *dst = k < K ? gw + (int64_t)(grp * og + o) * K + k : gb ? gb + grp * og + o : NULL;
          if (dst) *dst = accumulate ? *dst + s : s;
        }
    return NULL;
  }
  plane_map_t m = weight_map(&g);
  vectors_t vt;
  build_vectors(&m, ws, &vt);
  float *sums = ws + vectors_floats(&m);
  nt_job_t job = { &vt, x, gy, sums, g.batch, g.groups, cg, og, K, (int64_t)g.h * g.w, (int64_t)g.oh * g.ow,
                   (int64_t)g.cin * g.h * g.w, (int64_t)g.cout * g.oh * g.ow, gb != NULL, (int)wg_images(&g) };
  helper_units(nt_unit, &job, blocks, split_for(macs));
  sum_blocks(sums, size + g.cout, blocks, size + (gb ? g.cout : 0));
  for (int64_t i = 0; i < size; i++) gw[i] = accumulate ? gw[i] + sums[i] : sums[i];
  if (gb)
    for (int o = 0; o < g.cout; o++) gb[o] = accumulate ? gb[o] + sums[size + o] : sums[size + o];
#endif
  return NULL;
}

int register_conv(napi_env env, napi_value exports) {
  static const native_fn_t functions[] = {
    { "convWorkspace", conv_workspace }, { "convForward", conv_forward },
    { "convBackwardInput", conv_backward_input }, { "convBackwardWeight", conv_backward_weight },
  };
  napi_value available;
  if (napi_get_boolean(env, conv_available(), &available) != napi_ok ||
      napi_set_named_property(env, exports, "convAvailable", available) != napi_ok) return 0;
  return register_functions(env, exports, functions, sizeof functions / sizeof functions[0]);
}
