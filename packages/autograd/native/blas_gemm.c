/*
 * tapegrad's optional native gemm: a Node-API addon that forwards to the machine's CBLAS
 * (OpenBLAS, or Apple's Accelerate). The BLAS library is opened with dlopen at load time, so
 * building needs only a C compiler and Node's headers: no BLAS headers, no link-time dependency.
 *
 * Exports (all synchronous):
 *   gemm(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, beta)
 *     C = beta*C + op(A) @ op(B), row-major, A/B/C all Float32Array or all Float64Array, beta 0 or 1.
 *     Every operand span is bounds-checked against its typed array before BLAS touches memory.
 *   setThreads(n)  openblas_set_num_threads where the library has it (no-op otherwise)
 *   threads()      openblas_get_num_threads, or 0 when unknown
 *   threadedMinWork, splitMinWork   the thread policy's bounds, in multiply-adds (see below)
 *   library        the path or name that dlopen accepted
 *   config         openblas_get_config() or ""
 */
#define _POSIX_C_SOURCE 200809L /* setenv under -std=c11 */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>

#include "native.h"
#include "tile_gemm.h"

#ifndef TAPEGRAD_THREAD_TIMEOUT
#define TAPEGRAD_THREAD_TIMEOUT "4"
#endif

/* CBLAS enum values are fixed by the CBLAS standard; declared here so no cblas.h is needed. */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

/* NOTE: OpenBLAS is built with 32-bit integers (blasint = int) unless INTERFACE64; Debian's and
 * Homebrew's are. The loader's probe against the reference kernel catches a 64-bit-int build. */
typedef void (*sgemm_fn)(int order, int transA, int transB, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
typedef void (*dgemm_fn)(int order, int transA, int transB, int m, int n, int k, double alpha,
                         const double *a, int lda, const double *b, int ldb, double beta, double *c, int ldc);
typedef void (*set_threads_fn)(int);
typedef int (*get_threads_fn)(void);
typedef char *(*get_config_fn)(void);

static sgemm_fn blas_sgemm;
static dgemm_fn blas_dgemm;
static set_threads_fn blas_set_threads;
static get_threads_fn blas_get_threads;
static get_config_fn blas_get_config;
static const char *blas_library;

static const char *const candidates[] = {
#ifdef __APPLE__
  "/System/Library/Frameworks/Accelerate.framework/Accelerate",
  "libopenblas.dylib",
  "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
  "/usr/local/opt/openblas/lib/libopenblas.dylib",
#else
  "libopenblas.so.0",
  "libopenblas.so",
  "libopenblasp.so.0",
  "libblas.so.3", /* Debian's alternative: OpenBLAS's has cblas_*, the reference BLAS does not */
  "libcblas.so.3",
#endif
  NULL,
};

/* Threads a large product may use (setThreads), and the count OpenBLAS was last told. */
static int max_threads = 1;
static int current_threads = 0;

/* Threads per product, by its multiply-adds (m * n * k), for the products that go to BLAS (the tiles below,
 * from split_min_work, always split in chunks with the helper thread):
 *   >= 2^24 (256 x 256 x 256): OpenBLAS's own threads, all max_threads of them;
 *   >= SPLIT_MIN_WORK: split in two halves of C's rows or columns, one computed by helper.c's thread and
 *     one by the caller, each by single-threaded BLAS, so each element is still one kernel's sum over the
 *     whole depth;
 *   smaller: one thread.
 * NOTE: OpenBLAS's threads nearly double a large product, but on the mid-size ones of a training epoch
 * (the MLP's 128 x 784 x 128) they gain far less than the split with the addon's helper thread (helper.c),
 * which is what pays there. TAPEGRAD_SPLIT_MIN_WORK overrides the lower bound. */
#define THREADED_MIN_WORK ((int64_t)1 << 24)
#define SPLIT_MIN_WORK ((int64_t)1 << 20)
/* A half is a multiple of this many rows or columns: whole register tiles for BLAS. */
#define SPLIT_ALIGN 8
static int64_t split_min_work = SPLIT_MIN_WORK; /* TAPEGRAD_SPLIT_MIN_WORK, read at load */

/* How long the helper spins for the next split after one of `work` multiply-adds before it sleeps:
 * from 2^23 (the batch-128 MLP's products) not at all, below it 1 ms.
 * NOTE: while V8 compiles a training step's functions on a background thread during the first epochs, a
 * spinning helper holds the core that thread needs; against a product of 2^23 multiply-adds, waking the
 * helper (tens of microseconds) costs little. Below it (the batch-32 MLP's products, four times shorter
 * and twice as frequent) sleeping made the epoch slower, so the helper spins for the next product.
 * The epoch A/Bs behind both bounds: bench/NOTES.md, "Native gemm: threads and the helper split". */
#define SLEEP_AFTER_WORK ((int64_t)1 << 23)
#define SPIN_AFTER_SMALL_US 1000.0
static double spin_after(int64_t work) {
  return work >= SLEEP_AFTER_WORK ? 0.0 : SPIN_AFTER_SMALL_US;
}

/* Opens the first library that has both cblas_sgemm and cblas_dgemm; TAPEGRAD_BLAS_LIB overrides the list. */
static int open_blas(void) {
  if (blas_sgemm) return 1;
  /* NOTE: OpenBLAS's idle workers spin for 2^28 cycles (about 0.1 s) after each threaded call before they
   * sleep, taking the core the JavaScript between gemm calls runs on. 2^TIMEOUT cycles is read once, when
   * the library loads; a user's own setting wins. */
  setenv("OPENBLAS_THREAD_TIMEOUT", TAPEGRAD_THREAD_TIMEOUT, 0);
  const char *override = getenv("TAPEGRAD_BLAS_LIB");
  const char *one[] = { override, NULL };
  const char *const *names = (override && *override) ? one : candidates;
  for (; *names; names++) {
    void *handle = dlopen(*names, RTLD_NOW | RTLD_LOCAL);
    if (!handle) continue;
    sgemm_fn s = (sgemm_fn)dlsym(handle, "cblas_sgemm");
    dgemm_fn d = (dgemm_fn)dlsym(handle, "cblas_dgemm");
    if (!s || !d) {
      dlclose(handle);
      continue;
    }
    blas_sgemm = s;
    blas_dgemm = d;
    blas_set_threads = (set_threads_fn)dlsym(handle, "openblas_set_num_threads");
    blas_get_threads = (get_threads_fn)dlsym(handle, "openblas_get_num_threads");
    blas_get_config = (get_config_fn)dlsym(handle, "openblas_get_config");
    blas_library = *names;
    if (blas_get_threads) max_threads = blas_get_threads(); /* OPENBLAS_NUM_THREADS, or the core count */
    return 1;
  }
  return 0;
}

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, "tapegrad native gemm: bad arguments"); return NULL; } } while (0)

static int get_int(napi_env env, napi_value v, int64_t *out) {
  return napi_get_value_int64(env, v, out) == napi_ok;
}

/* Elements one row-major matrix of `rows` rows and `cols` columns spans with row stride ld. */
static int64_t span_of(int64_t rows, int64_t cols, int64_t ld) {
  return rows <= 0 || cols <= 0 ? 0 : (rows - 1) * ld + cols;
}

/* One BLAS call: C = beta*C + op(A) @ op(B), row-major. */
typedef struct {
  int f64, ta, tb, m, n, k;
  const void *a;
  int lda;
  const void *b;
  int ldb;
  int beta;
  void *c;
  int ldc;
} part_t;

static void run_part(const void *arg) {
  const part_t *p = arg;
  /* NOTE: BLAS treats beta == 0 as "do not read C", so NaN garbage in C is overwritten, as the contract asks. */
  if (p->f64) {
    blas_dgemm(CBLAS_ROW_MAJOR, p->ta, p->tb, p->m, p->n, p->k, 1.0, p->a, p->lda, p->b, p->ldb,
               p->beta ? 1.0 : 0.0, p->c, p->ldc);
  } else {
    blas_sgemm(CBLAS_ROW_MAJOR, p->ta, p->tb, p->m, p->n, p->k, 1.0f, p->a, p->lda, p->b, p->ldb,
               p->beta ? 1.0f : 0.0f, p->c, p->ldc);
  }
}

/* Cuts a product into two halves of C's columns (both halves then pack all of op(A)) or of its rows (both
 * pack all of op(B)), whichever duplicates less packing; 0 where neither dimension has two aligned halves. */
static int split(const part_t *p, part_t out[2]) {
  size_t width = p->f64 ? 8 : 4;
  int by_cols = (int64_t)p->m * p->k <= (int64_t)p->k * p->n;
  if (by_cols ? p->n < 2 * SPLIT_ALIGN : p->m < 2 * SPLIT_ALIGN) by_cols = !by_cols;
  int size = by_cols ? p->n : p->m;
  if (size < 2 * SPLIT_ALIGN) return 0;
  int half = (size / 2 + SPLIT_ALIGN - 1) / SPLIT_ALIGN * SPLIT_ALIGN;
  out[0] = *p;
  out[1] = *p;
  if (by_cols) {
    out[0].n = half;
    out[1].n = p->n - half;
    /* op(B)'s column j is column j of B, or row j of a transposed B */
    out[1].b = (const char *)p->b + width * (size_t)(p->tb == CBLAS_TRANS ? (size_t)half * p->ldb : (size_t)half);
    out[1].c = (char *)p->c + width * (size_t)half;
  } else {
    out[0].m = half;
    out[1].m = p->m - half;
    out[1].a = (const char *)p->a + width * (p->ta == CBLAS_TRANS ? (size_t)half : (size_t)half * p->lda);
    out[1].c = (char *)p->c + width * (size_t)half * p->ldc;
  }
  return 1;
}

/* tile_gemm.c's kernels, where they beat single-threaded BLAS: float32 NN, NT and TN products below
 * THREADED_MIN_WORK (WIDE_MAX_WORK with AVX-512, below) whose streamed operand stays in L2 (NT: op(A) of at most 2^17 floats, or a B of at
 * most 2^15, which stays in cache while A passes once; NN/TN: depth at most 512). Within those bounds the
 * tiles win by skipping the packing (on softmax regression's 256 x 10 x 784 forward OpenBLAS packs x for
 * longer than it multiplies); beyond them OpenBLAS's cache blocking wins. Timings: bench/NOTES.md,
 * "Native gemm: AVX2 tiles". */
static int tiles_on = 1; /* setTiles */

int native_max_threads(void) { return max_threads; }
int64_t native_split_min_work(void) { return split_min_work; }

/* With AVX-512 (tile_gemm_wide, where OpenBLAS 0.3.21 runs its Haswell AVX2 kernels at half the speed) the
 * tiles take float32 products below WIDE_MAX_WORK, NT ones other than those with a small B (which stays in
 * cache while A passes once) through a transposed copy of B as NN products (depth at most
 * WIDE_NT_MAX_DEPTH and a B of at most WIDE_NT_MAX_B floats: the copy costs a few percent of the product,
 * and the NN tiles reach about twice the NT dot products' speed). Timings: bench/NOTES-conv.md, "AVX-512
 * tiles". */
#define WIDE_MAX_WORK ((int64_t)1 << 29)
#define WIDE_NT_MAX_DEPTH 4096
#define WIDE_NT_MAX_B ((int64_t)1 << 21)

enum { NO_TILES = 0, TILES = 1, TILES_TRANSPOSED_B = 2 };

static int use_tiles(int f64, int ta, int tb, int64_t m, int64_t n, int64_t k, int64_t work) {
  if (!tiles_on || f64 || (ta && tb) || !tile_gemm_available()) return NO_TILES;
  const int wide = tile_gemm_wide();
  if (work >= (wide ? WIDE_MAX_WORK : THREADED_MIN_WORK)) return NO_TILES;
  if (!tb) return k <= 512 ? TILES : NO_TILES;
  if (n * k <= ((int64_t)1 << 15) || (m * k <= ((int64_t)1 << 17) && (!wide || k > WIDE_NT_MAX_DEPTH))) return TILES;
  return wide && k <= WIDE_NT_MAX_DEPTH && n * k <= WIDE_NT_MAX_B ? TILES_TRANSPOSED_B : NO_TILES;
}

/* The calling thread's scratch for transposed operands (grown as needed, kept for the next product). */
static _Thread_local float *scratch;
static _Thread_local size_t scratch_floats;

static float *scratch_of(size_t floats) {
  if (floats <= scratch_floats) return scratch;
  free(scratch);
  /* whole 64-byte lines */
  scratch = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
  scratch_floats = scratch ? floats : 0;
  return scratch;
}

/* A product split into chunks of columns (or of rows, when C has too few columns for a fair share) that
 * the caller claims one at a time from the first and the helper from the last, so each thread works
 * through one contiguous block of C (and of the operand the chunks cut) and keeps it in its own cache. */
typedef struct {
  tile_gemm_t t;
  int by_rows, size, shift; /* chunk c is rows or columns [c * size - shift, (c + 1) * size - shift) */
  _Atomic uint64_t ends; /* front << 32 | back: chunks [front, back) are unclaimed */
} tile_job_t;

/* One side of a job: the caller's (from the front) or the helper's (from the back). */
typedef struct {
  tile_job_t *job;
  int from_back;
} tile_side_t;

/* The next chunk for this side, or -1 when none is left. */
static int claim_chunk(tile_job_t *job, int from_back) {
  uint64_t cur = atomic_load(&job->ends);
  for (;;) {
    uint32_t front = (uint32_t)(cur >> 32), back = (uint32_t)cur;
    if (front >= back) return -1;
    uint64_t next = from_back ? ((uint64_t)front << 32) | (back - 1) : ((uint64_t)(front + 1) << 32) | back;
    if (atomic_compare_exchange_weak(&job->ends, &cur, next)) return (int)(from_back ? back - 1 : front);
  }
}

/* Columns per chunk: NT 16 (a 64-byte line of C's row, so the two threads do not write the same cache
 * line), NN/TN 48; rows per chunk when C is tall and narrow: 24 (NT) or 32 (NN/TN), whole tiles. */
#define NT_COLS 16
#define BC_COLS 48
#define NT_ROWS 24
#define BC_ROWS 32
#define MIN_CHUNKS 8

static void tile_worker(const void *arg) {
  const tile_side_t *side = arg;
  tile_job_t *job = side->job; /* NOTE: the chunk bounds are the only field written */
  const tile_gemm_t *t = &job->t;
  for (int chunk; (chunk = claim_chunk(job, side->from_back)) >= 0;) {
    int lo = chunk * job->size - job->shift, hi = lo + job->size;
    if (lo < 0) lo = 0;
    if (job->by_rows) tile_gemm_part(t, lo, hi < t->m ? hi : t->m, 0, t->n);
    else tile_gemm_part(t, 0, t->m, lo, hi < t->n ? hi : t->n);
  }
}

/* The product by tile_gemm.c: split in chunks between the caller and the helper thread from
 * split_min_work, else on the caller alone. */
static void tile_product(const part_t *p, int64_t work) {
  tile_job_t job = { { p->ta == CBLAS_TRANS, p->tb == CBLAS_TRANS, p->m, p->n, p->k, p->a, p->lda, p->b,
                       p->ldb, p->beta, p->c, p->ldc }, 0, 0, 0, 0 };
  int cols = job.t.tb ? NT_COLS : BC_COLS, rows = job.t.tb ? NT_ROWS : BC_ROWS;
  job.by_rows = p->n < MIN_CHUNKS * cols && p->m > p->n;
  job.size = job.by_rows ? rows : cols;
  /* column chunks start where the tiles load aligned vectors (the first is shorter) */
  job.shift = job.by_rows ? 0 : tile_gemm_column_shift(&job.t);
  int chunks = ((job.by_rows ? p->m : p->n) + job.shift + job.size - 1) / job.size;
  atomic_store(&job.ends, (uint64_t)chunks);
  tile_side_t front = { &job, 0 }, back = { &job, 1 };
  /* NOTE: each part runs the chunk loop; whichever side finds no chunk left returns, so the caller taking
   * the helper's part back (helper.c) costs nothing */
  if (max_threads > 1 && work >= split_min_work && chunks >= 2 &&
      helper_split(tile_worker, &back, &front, spin_after(work))) return;
  tile_gemm_part(&job.t, 0, p->m, 0, p->n);
}

static napi_value gemm(napi_env env, napi_callback_info info) {
  size_t argc = 15;
  napi_value argv[15];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 15) {
    napi_throw_type_error(env, NULL, "tapegrad native gemm: expected 15 arguments");
    return NULL;
  }
  bool trans_a, trans_b;
  int64_t m, n, k, a_off, lda, b_off, ldb, c_off, ldc, beta;
  CHECK(napi_get_value_bool(env, argv[0], &trans_a));
  CHECK(napi_get_value_bool(env, argv[1], &trans_b));
  if (!get_int(env, argv[2], &m) || !get_int(env, argv[3], &n) || !get_int(env, argv[4], &k) ||
      !get_int(env, argv[6], &a_off) || !get_int(env, argv[7], &lda) || !get_int(env, argv[9], &b_off) ||
      !get_int(env, argv[10], &ldb) || !get_int(env, argv[12], &c_off) || !get_int(env, argv[13], &ldc) ||
      !get_int(env, argv[14], &beta)) {
    napi_throw_type_error(env, NULL, "tapegrad native gemm: sizes, offsets and strides must be numbers");
    return NULL;
  }
  if (m <= 0 || n <= 0 || k <= 0) {
    napi_throw_range_error(env, NULL, "tapegrad native gemm: m, n and k must be positive (the caller handles empty products)");
    return NULL;
  }
  /* CBLAS's own argument check would print to stderr and return silently: reject here instead. */
  int64_t a_cols = trans_a ? m : k, a_rows = trans_a ? k : m;
  int64_t b_cols = trans_b ? k : n, b_rows = trans_b ? n : k;
  if (lda < a_cols || ldb < b_cols || ldc < n || m > INT32_MAX || n > INT32_MAX || k > INT32_MAX ||
      lda > INT32_MAX || ldb > INT32_MAX || ldc > INT32_MAX) {
    napi_throw_range_error(env, NULL, "tapegrad native gemm: a stride is smaller than its row or a size exceeds 2^31");
    return NULL;
  }
  static const char who[] = "tapegrad native gemm", what[] = "offset, shape and stride";
  int type = float_operand_type(env, argv[11], who);
  if (type < 0) return NULL;
  void *a = float_operand(env, argv[5], type, a_off, span_of(a_rows, a_cols, lda), who, "A", what);
  if (!a) return NULL;
  void *b = float_operand(env, argv[8], type, b_off, span_of(b_rows, b_cols, ldb), who, "B", what);
  if (!b) return NULL;
  void *c = float_operand(env, argv[11], type, c_off, span_of(m, n, ldc), who, "C", what);
  if (!c) return NULL;
  int64_t work = m * n * k;
  part_t whole = { type == napi_float64_array, trans_a ? CBLAS_TRANS : CBLAS_NO_TRANS,
                   trans_b ? CBLAS_TRANS : CBLAS_NO_TRANS, (int)m, (int)n, (int)k, a, (int)lda, b, (int)ldb,
                   (int)beta, c, (int)ldc };
  const int tiles = use_tiles(whole.f64, trans_a, trans_b, m, n, k, work);
  if (tiles == TILES) {
    tile_product(&whole, work);
    return NULL;
  }
  if (tiles == TILES_TRANSPOSED_B) {
    /* C = A B^T as A (B^T): B^T copied k x n, rows padded to whole 64-byte lines */
    const int ldt = (int)((n + 15) / 16 * 16);
    float *bt = scratch_of((size_t)k * ldt);
    if (bt) {
      tile_gemm_transpose(b, (int)ldb, (int)n, (int)k, bt, ldt);
      part_t nn = whole;
      nn.tb = CBLAS_NO_TRANS;
      nn.b = bt;
      nn.ldb = ldt;
      tile_product(&nn, work);
      return NULL;
    }
  }
  int want = max_threads > 1 && work >= THREADED_MIN_WORK ? max_threads : 1;
  if (blas_set_threads && want != current_threads) {
    blas_set_threads(want);
    current_threads = want;
  }
  part_t halves[2];
  if (want == 1 && max_threads > 1 && blas_set_threads && work >= split_min_work && split(&whole, halves) &&
      helper_split(run_part, &halves[1], &halves[0], spin_after(work))) {
    return NULL;
  }
  run_part(&whole);
  return NULL;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t count = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &count) != napi_ok || count < 1) {
    napi_throw_range_error(env, NULL, "tapegrad native gemm: setThreads takes a positive integer");
    return NULL;
  }
  max_threads = count;
  current_threads = 0; /* the next call sets the count it wants */
  return NULL;
}

static napi_value set_tiles(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool on = false;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_bool(env, argv[0], &on) != napi_ok) {
    napi_throw_type_error(env, NULL, "tapegrad native gemm: setTiles takes a boolean");
    return NULL;
  }
  tiles_on = on;
  return NULL;
}

static napi_value get_tiles(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_get_boolean(env, tiles_on && tile_gemm_available(), &out));
  return out;
}

/* tilesInfo(): the tiles' vector width in floats (16 with AVX-512, 8 with AVX2, 0 without tiles) and the
 * work below which they take a product. */
static napi_value get_tiles_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out, v;
  const int wide = tile_gemm_wide();
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_int32(env, !tile_gemm_available() ? 0 : wide ? 16 : 8, &v));
  CHECK(napi_set_named_property(env, out, "vector", v));
  CHECK(napi_create_double(env, (double)(wide ? WIDE_MAX_WORK : THREADED_MIN_WORK), &v));
  CHECK(napi_set_named_property(env, out, "maxWork", v));
  return out;
}

/* helperStats(reset): helper.c's counters as { posts, takenBack, lateUs, lateHistogram, splitMs, waitMs };
 * with reset true they restart from zero. */
static napi_value get_helper_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v, hist;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool reset = false;
  if (argc >= 1 && napi_get_value_bool(env, argv[0], &reset) != napi_ok) reset = false;
  helper_stats_t st;
  helper_stats(&st, reset);
  CHECK(napi_create_object(env, &out));
  const struct { const char *name; double value; } fields[] = {
    { "posts", (double)st.posts }, { "takenBack", (double)st.taken_back }, { "lateUs", (double)st.late_ns / 1e3 },
    { "splitMs", (double)st.split_ns / 1e6 }, { "waitMs", (double)st.wait_ns / 1e6 },
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    CHECK(napi_create_double(env, fields[i].value, &v));
    CHECK(napi_set_named_property(env, out, fields[i].name, v));
  }
  CHECK(napi_create_array_with_length(env, HELPER_LATE_BUCKETS, &hist));
  for (uint32_t i = 0; i < HELPER_LATE_BUCKETS; i++) {
    CHECK(napi_create_double(env, (double)st.late_hist[i], &v));
    CHECK(napi_set_element(env, hist, i, v));
  }
  CHECK(napi_set_named_property(env, out, "lateHistogram", hist));
  return out;
}

static napi_value get_threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_create_int32(env, blas_get_threads ? max_threads : 0, &out));
  return out;
}

NAPI_MODULE_INIT() {
  if (!open_blas()) {
    napi_throw_error(env, NULL,
      "tapegrad native gemm: no CBLAS library found (tried libopenblas.so.0, libblas.so.3 ...; set TAPEGRAD_BLAS_LIB)");
    return NULL;
  }
  napi_value text, number;
  const char *split_env = getenv("TAPEGRAD_SPLIT_MIN_WORK");
  split_min_work = split_env && *split_env ? atoll(split_env) : SPLIT_MIN_WORK;
  CHECK(napi_create_double(env, (double)THREADED_MIN_WORK, &number));
  CHECK(napi_set_named_property(env, exports, "threadedMinWork", number));
  CHECK(napi_create_double(env, (double)split_min_work, &number));
  CHECK(napi_set_named_property(env, exports, "splitMinWork", number));
  static const native_fn_t functions[] = {
    { "gemm", gemm }, { "setThreads", set_threads }, { "threads", get_threads },
    { "setTiles", set_tiles }, { "tiles", get_tiles }, { "tilesInfo", get_tiles_info }, { "helperStats", get_helper_stats },
  };
  if (!register_functions(env, exports, functions, sizeof functions / sizeof functions[0])) {
    napi_throw_error(env, NULL, "tapegrad native gemm: registering the gemm functions failed");
    return NULL;
  }
  CHECK(napi_create_string_utf8(env, blas_library, NAPI_AUTO_LENGTH, &text));
  CHECK(napi_set_named_property(env, exports, "library", text));
  CHECK(napi_create_string_utf8(env, blas_get_config ? blas_get_config() : "", NAPI_AUTO_LENGTH, &text));
  CHECK(napi_set_named_property(env, exports, "config", text));
  if (!register_conv(env, exports) || !register_pool(env, exports)) {
    napi_throw_error(env, NULL, "tapegrad native: registering the convolution and pooling kernels failed");
    return NULL;
  }
  if (!register_elementwise(env, exports)) {
    napi_throw_error(env, NULL, "tapegrad native: registering the elementwise kernels failed");
    return NULL;
  }
  return exports;
}
