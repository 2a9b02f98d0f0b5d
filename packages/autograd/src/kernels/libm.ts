/**
 * exp and log for the kernels that have a native twin (the exp and log ops, logSoftmax forward and
 * backward). Math.exp and C's exp may differ in the last bit, so neither can serve both; these are
 * written once in plain IEEE double operations (no fused multiply-add, no library call), and
 * native/libm.h repeats them operation for operation, so the TypeScript and the native kernels give the
 * same bits. Both are within a few units in the last place of the exact result, far below float32's
 * rounding and within PyTorch's float64 tolerances.
 */

/** ln 2 split so that k · LN2_HI is exact for |k| < 2^21 (LN2_HI has 32 significant bits). */
const LN2_HI = 0.6931471804855391;
const LN2_LO = 7.440617110012397e-11;
/** Adding and subtracting 1.5 · 2^52 rounds a double of magnitude below 2^51 to the nearest integer. */
const ROUNDER = 6755399441055744;
const SQRT2 = 1.4142135623730951;
const TWO54 = 18014398509481984;

/** 2^k for k in [-1074, 1023], each exact (the smallest are subnormal): pow2(k) = POW2[k + 1074]. */
const POW2 = new Float64Array(2098);
POW2[1074] = 1;
for (let k = 1; k <= 1023; k++) POW2[1074 + k] = POW2[1073 + k] * 2;
for (let k = 1; k <= 1074; k++) POW2[1074 - k] = POW2[1075 - k] / 2;

/** 2^(j/32) for j = 0..31, each the double nearest the exact value. */
const EXP2_32THS = new Float64Array([
  1.0, 1.0218971486541166, 1.0442737824274138, 1.0671404006768237,
  1.0905077326652577, 1.1143867425958924, 1.1387886347566916, 1.1637248587775775,
  1.189207115002721, 1.215247359980469, 1.241857812073484, 1.2690509571917332,
  1.2968395546510096, 1.3252366431597413, 1.3542555469368927, 1.383909881963832,
  1.4142135623730951, 1.4451808069770467, 1.4768261459394993, 1.5091644275934228,
  1.5422108254079407, 1.5759808451078865, 1.6104903319492543, 1.645755478153965,
  1.681792830507429, 1.718619298122478, 1.7562521603732995, 1.7947090750031072,
  1.8340080864093424, 1.8741676341103, 1.9152065613971474, 1.9571441241754002,
]);
/** 32/ln 2, and ln 2/32 split as LN2_HI/32 and LN2_LO/32 (exact divisions by a power of two). */
const THIRTYTWO_BY_LN2 = 46.16624130844683;
const LN2_32_HI = LN2_HI / 32;
const LN2_32_LO = LN2_LO / 32;

/**
 * e^x: x = (32k + j)·ln2/32 + r with |r| ≤ ln2/64, so e^x = 2^k · 2^(j/32) · e^r, and e^r - 1 by its
 * Taylor series to r^6 (truncation below 4e-18), grouped in pairs so the terms do not wait on each other.
 */
export function expDouble(x: number): number {
  if (!(x < 709.8)) return x !== x ? x : Infinity;
  if (x < -745.2) return 0;
  const n = (x * THIRTYTWO_BY_LN2 + ROUNDER) - ROUNDER;
  const r = (x - n * LN2_32_HI) - n * LN2_32_LO;
  const ni = n | 0;
  const k = ni >> 5;
  const t = EXP2_32THS[ni & 31];
  const r2 = r * r;
  const q1 = r * (1 / 6) + 0.5;
  const q2 = (r * (1 / 120) + 1 / 24) + r2 * (1 / 720);
  const p = (r + r2 * q1) + (r2 * r2) * q2;
  const m = t + t * p;
  // NOTE: outside 2^±1022 the scale is applied in two exact steps, so only the last product rounds
  if (k > 1023) return m * POW2[1074 + 1023] * POW2[1074 + (k - 1023)];
  if (k < -1022) return m * POW2[1074 + (k + 64)] * POW2[1074 - 64];
  return m * POW2[1074 + k];
}

const bits = new Float64Array(1);
const words = new Uint32Array(bits.buffer);
/** Index of the word that holds the sign, exponent and top of the mantissa. */
const HIGH = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1 ? 1 : 0;

/**
 * Natural log: x = 2^e · f with f in [√½, √2), log f = 2·atanh(u) with u = (f - 1)/(f + 1), |u| ≤ 0.1716,
 * by its series to u^21 (truncation below 1e-17).
 */
export function logDouble(x: number): number {
  if (!(x > 0)) return x === 0 ? -Infinity : NaN;
  if (x === Infinity) return x;
  let e = 0;
  if (x < 2.2250738585072014e-308) { // subnormal: make it normal first
    x *= TWO54;
    e = -54;
  }
  bits[0] = x;
  const exponent = ((words[HIGH] >>> 20) & 0x7ff) - 1023;
  let f = x * POW2[1074 - exponent];
  e += exponent;
  if (f > SQRT2) {
    f *= 0.5;
    e += 1;
  }
  const u = (f - 1) / (f + 1);
  const u2 = u * u;
  let p = 1 / 21;
  p = p * u2 + 1 / 19;
  p = p * u2 + 1 / 17;
  p = p * u2 + 1 / 15;
  p = p * u2 + 1 / 13;
  p = p * u2 + 1 / 11;
  p = p * u2 + 1 / 9;
  p = p * u2 + 1 / 7;
  p = p * u2 + 1 / 5;
  p = p * u2 + 1 / 3;
  p = p * u2 + 1;
  return e * LN2_HI + (e * LN2_LO + 2 * u * p);
}
