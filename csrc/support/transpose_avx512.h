// 16x16 (float) and 8x8 (double) in-register transposes for the AVX-512 translation units
// (include only from files built with AVX-512 flags).
#pragma once

#include <immintrin.h>

namespace fastdl {
namespace avx512 {

// r[k] becomes column k of the 16x16 matrix whose rows are r[0..15].
__attribute__((always_inline)) inline void transpose16_ps(__m512* r) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // r[4i+j], 128-bit lane L: rows 4i..4i+3 of column 4L+j
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int j = 0; j < 4; ++j) t[j] = r[j], t[4 + j] = r[4 + j], t[8 + j] = r[8 + j], t[12 + j] = r[12 + j];
  for (int j = 0; j < 4; ++j) {
    const __m512 u0 = _mm512_shuffle_f32x4(t[j], t[4 + j], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 u1 = _mm512_shuffle_f32x4(t[j], t[4 + j], _MM_SHUFFLE(3, 2, 3, 2));
    const __m512 u2 = _mm512_shuffle_f32x4(t[8 + j], t[12 + j], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 u3 = _mm512_shuffle_f32x4(t[8 + j], t[12 + j], _MM_SHUFFLE(3, 2, 3, 2));
    r[j] = _mm512_shuffle_f32x4(u0, u2, _MM_SHUFFLE(2, 0, 2, 0));
    r[4 + j] = _mm512_shuffle_f32x4(u0, u2, _MM_SHUFFLE(3, 1, 3, 1));
    r[8 + j] = _mm512_shuffle_f32x4(u1, u3, _MM_SHUFFLE(2, 0, 2, 0));
    r[12 + j] = _mm512_shuffle_f32x4(u1, u3, _MM_SHUFFLE(3, 1, 3, 1));
  }
}

// r[k] becomes column k of the 8x8 matrix whose rows are r[0..7].
__attribute__((always_inline)) inline void transpose8_pd(__m512d* r) {
  __m512d t[8];
  for (int i = 0; i < 4; ++i) {  // 128-bit lane L of t[2i+e]: rows 2i, 2i+1 of column 2L+e
    t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
  }
  for (int e = 0; e < 2; ++e) {
    const __m512d u0 = _mm512_shuffle_f64x2(t[e], t[2 + e], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512d u1 = _mm512_shuffle_f64x2(t[e], t[2 + e], _MM_SHUFFLE(3, 2, 3, 2));
    const __m512d u2 = _mm512_shuffle_f64x2(t[4 + e], t[6 + e], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512d u3 = _mm512_shuffle_f64x2(t[4 + e], t[6 + e], _MM_SHUFFLE(3, 2, 3, 2));
    r[e] = _mm512_shuffle_f64x2(u0, u2, _MM_SHUFFLE(2, 0, 2, 0));
    r[2 + e] = _mm512_shuffle_f64x2(u0, u2, _MM_SHUFFLE(3, 1, 3, 1));
    r[4 + e] = _mm512_shuffle_f64x2(u1, u3, _MM_SHUFFLE(2, 0, 2, 0));
    r[6 + e] = _mm512_shuffle_f64x2(u1, u3, _MM_SHUFFLE(3, 1, 3, 1));
  }
}

}  // namespace avx512
}  // namespace fastdl
