/*
 * exp and log, operation for operation as src/kernels/libm.ts computes them, so the native kernels that
 * use them (exp, log, logSoftmax) give the same bits as their TypeScript twins. C's exp and log (and
 * V8's Math.exp and Math.log) may differ from each other in the last bit; these use only IEEE double
 * +, -, *, / (the build's -ffp-contract=off keeps them unfused) and exact powers of two. See libm.ts for
 * the method and the accuracy.
 */
#ifndef TAPEGRAD_LIBM_H
#define TAPEGRAD_LIBM_H
#include <math.h>
#include <stdint.h>
#include <string.h>

#define TG_LN2_HI 0.6931471804855391
#define TG_LN2_LO 7.440617110012397e-11
#define TG_ROUNDER 6755399441055744.0
#define TG_SQRT2 1.4142135623730951
#define TG_TWO54 18014398509481984.0

/* 2^k for k in [-1074, 1023], exact (built from its bits, not computed). */
static inline double tg_pow2(int k) {
  uint64_t bits = k >= -1022 ? (uint64_t)(k + 1023) << 52 : (uint64_t)1 << (k + 1074);
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

static const double tg_exp2_32ths[32] = {
  1.0, 1.0218971486541166, 1.0442737824274138, 1.0671404006768237,
  1.0905077326652577, 1.1143867425958924, 1.1387886347566916, 1.1637248587775775,
  1.189207115002721, 1.215247359980469, 1.241857812073484, 1.2690509571917332,
  1.2968395546510096, 1.3252366431597413, 1.3542555469368927, 1.383909881963832,
  1.4142135623730951, 1.4451808069770467, 1.4768261459394993, 1.5091644275934228,
  1.5422108254079407, 1.5759808451078865, 1.6104903319492543, 1.645755478153965,
  1.681792830507429, 1.718619298122478, 1.7562521603732995, 1.7947090750031072,
  1.8340080864093424, 1.8741676341103, 1.9152065613971474, 1.9571441241754002,
};
#define TG_32_BY_LN2 46.16624130844683
#define TG_LN2_32_HI (TG_LN2_HI / 32.0) /* exact: a power of two */
#define TG_LN2_32_LO (TG_LN2_LO / 32.0)

static inline double tg_exp(double x) {
  if (!(x < 709.8)) return x != x ? x : (double)INFINITY;
  if (x < -745.2) return 0.0;
  double n = (x * TG_32_BY_LN2 + TG_ROUNDER) - TG_ROUNDER;
  double r = (x - n * TG_LN2_32_HI) - n * TG_LN2_32_LO;
  int ni = (int)n;
  int k = ni >> 5; /* arithmetic shift: floor division by 32, as JavaScript's >> */
  double t = tg_exp2_32ths[ni & 31];
  double r2 = r * r;
  double q1 = r * (1.0 / 6.0) + 0.5;
  double q2 = (r * (1.0 / 120.0) + 1.0 / 24.0) + r2 * (1.0 / 720.0);
  double p = (r + r2 * q1) + (r2 * r2) * q2;
  double m = t + t * p;
  if (k > 1023) return m * tg_pow2(1023) * tg_pow2(k - 1023);
  if (k < -1022) return m * tg_pow2(k + 64) * tg_pow2(-64);
  return m * tg_pow2(k);
}

/* Where tg_exp's result is m * 2^k with k in [-1022, 1023] (its last branch): x in [TG_EXP_NORMAL_LO,
 * TG_EXP_NORMAL_HI). elementwise.c's vector exp does tg_exp's operations there and calls tg_exp elsewhere. */
#define TG_EXP_NORMAL_LO (-708.0)
#define TG_EXP_NORMAL_HI 709.7

static inline double tg_log(double x) {
  if (!(x > 0)) return x == 0 ? -(double)INFINITY : (double)NAN;
  if (x == (double)INFINITY) return x;
  int e = 0;
  if (x < 2.2250738585072014e-308) {
    x *= TG_TWO54;
    e = -54;
  }
  uint64_t bits;
  memcpy(&bits, &x, sizeof bits);
  int exponent = (int)((bits >> 52) & 0x7ff) - 1023;
  double f = x * tg_pow2(-exponent);
  e += exponent;
  if (f > TG_SQRT2) {
    f *= 0.5;
    e += 1;
  }
  double u = (f - 1.0) / (f + 1.0);
  double u2 = u * u;
  double p = 1.0 / 21.0;
  p = p * u2 + 1.0 / 19.0;
  p = p * u2 + 1.0 / 17.0;
  p = p * u2 + 1.0 / 15.0;
  p = p * u2 + 1.0 / 13.0;
  p = p * u2 + 1.0 / 11.0;
  p = p * u2 + 1.0 / 9.0;
  p = p * u2 + 1.0 / 7.0;
  p = p * u2 + 1.0 / 5.0;
  p = p * u2 + 1.0 / 3.0;
  p = p * u2 + 1.0;
  return (double)e * TG_LN2_HI + ((double)e * TG_LN2_LO + 2.0 * u * p);
}

#endif
