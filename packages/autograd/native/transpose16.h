/* The 16 x 16 float block transpose through AVX-512 registers that conv.c and tile_gemm.c share. Include it
 * after <immintrin.h>, inside the files' x86-64 GCC/Clang sections. */
#ifndef TAPEGRAD_TRANSPOSE16_H
#define TAPEGRAD_TRANSPOSE16_H

/* dst[c * ldd + r] = src[r * ld + c] for r < rows, c < cols (both at most 16): pairs of rows unpacked, then
 * pairs of pairs, then 128-bit lanes. Rows past `rows` load nothing (a masked-off lane reads no memory);
 * with `exact` 0 each stored column is a full 16 floats wide (zeros past `rows`), with 1 only `rows` wide. */
__attribute__((target("avx512f"))) static inline void transpose16_block(const float *src, int64_t ld, int rows, int cols,
                                                                          float *dst, int64_t ldd, int exact) {
  const __mmask16 cm = (__mmask16)(cols >= 16 ? 0xffff : (1u << cols) - 1);
  __m512 r[16], t[16], u[16];
  _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) r[i] = _mm512_maskz_loadu_ps(i < rows ? cm : 0, src + i * ld);
  _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  /* u[4 g + c], 128-bit lane L: column 4 L + c of rows 4 g .. 4 g + 3 */
  _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
    const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 2]);
    const __m512d c = _mm512_castps_pd(t[4 * g + 1]), d = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
  }
  const __mmask16 rm = (__mmask16)(!exact || rows >= 16 ? 0xffff : (1u << rows) - 1);
  _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44), v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
    const __m512 out[4] = { _mm512_shuffle_f32x4(v0, v2, 0x88), _mm512_shuffle_f32x4(v0, v2, 0xDD),
                            _mm512_shuffle_f32x4(v1, v3, 0x88), _mm512_shuffle_f32x4(v1, v3, 0xDD) };
    _Pragma("GCC unroll 4") for (int L = 0; L < 4; L++)
      if (4 * L + c < cols) _mm512_mask_storeu_ps(dst + (4 * L + c) * ldd, rm, out[L]);
  }
}

#endif
