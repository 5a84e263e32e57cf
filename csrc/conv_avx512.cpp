// Convolution kernels for AVX-512 (compiled with AVX-512 flags; used when cpu_level() says so).
// 32 vector registers: tiles of up to 16x1, 12x2, 8x3 or 6x4 accumulators.
#include <immintrin.h>

#include <cstdint>

#include "conv_kernels.h"

namespace fastdl {
namespace conv {
namespace avx512 {

constexpr int tile_rows(int v) { return v == 1 ? 16 : v == 2 ? 12 : v == 3 ? 8 : 6; }

struct VF {
  using T = float;
  using R = __m512;
  static constexpr int W = 16;
  static constexpr int VMAX = 4;
  static constexpr int FLAT_F = 6, FLAT_V = 4, DW_F = 4, DW_T = 6;
  static constexpr int mmax(int v) { return tile_rows(v); }
  static R zero() { return _mm512_setzero_ps(); }
  static R load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, R r) { _mm512_storeu_ps(p, r); }
  static R set1(T t) { return _mm512_set1_ps(t); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static __mmask16 mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static R load_n(const T* p, int n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store_n(T* p, R r, int n) { _mm512_mask_storeu_ps(p, mask(n), r); }
  // r[k] becomes column k of the 16x16 matrix whose rows are r[0..15].
  __attribute__((always_inline)) static void transpose(R* r) {
    R t[16];
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
      const R u0 = _mm512_shuffle_f32x4(t[j], t[4 + j], _MM_SHUFFLE(1, 0, 1, 0));
      const R u1 = _mm512_shuffle_f32x4(t[j], t[4 + j], _MM_SHUFFLE(3, 2, 3, 2));
      const R u2 = _mm512_shuffle_f32x4(t[8 + j], t[12 + j], _MM_SHUFFLE(1, 0, 1, 0));
      const R u3 = _mm512_shuffle_f32x4(t[8 + j], t[12 + j], _MM_SHUFFLE(3, 2, 3, 2));
      r[j] = _mm512_shuffle_f32x4(u0, u2, _MM_SHUFFLE(2, 0, 2, 0));
      r[4 + j] = _mm512_shuffle_f32x4(u0, u2, _MM_SHUFFLE(3, 1, 3, 1));
      r[8 + j] = _mm512_shuffle_f32x4(u1, u3, _MM_SHUFFLE(2, 0, 2, 0));
      r[12 + j] = _mm512_shuffle_f32x4(u1, u3, _MM_SHUFFLE(3, 1, 3, 1));
    }
  }
};

struct VD {
  using T = double;
  using R = __m512d;
  static constexpr int W = 8;
  static constexpr int VMAX = 4;
  static constexpr int FLAT_F = 6, FLAT_V = 4, DW_F = 4, DW_T = 6;
  static constexpr int mmax(int v) { return tile_rows(v); }
  static R zero() { return _mm512_setzero_pd(); }
  static R load(const T* p) { return _mm512_loadu_pd(p); }
  static void store(T* p, R r) { _mm512_storeu_pd(p, r); }
  static R set1(T t) { return _mm512_set1_pd(t); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static R add(R a, R b) { return _mm512_add_pd(a, b); }
  static __mmask8 mask(int n) { return static_cast<__mmask8>((1u << n) - 1u); }
  static R load_n(const T* p, int n) { return _mm512_maskz_loadu_pd(mask(n), p); }
  static void store_n(T* p, R r, int n) { _mm512_mask_storeu_pd(p, mask(n), r); }
  // r[k] becomes column k of the 8x8 matrix whose rows are r[0..7].
  __attribute__((always_inline)) static void transpose(R* r) {
    R t[8];
    for (int i = 0; i < 4; ++i) {  // 128-bit lane L of t[2i+e]: rows 2i, 2i+1 of column 2L+e
      t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
    }
    for (int e = 0; e < 2; ++e) {
      const R u0 = _mm512_shuffle_f64x2(t[e], t[2 + e], _MM_SHUFFLE(1, 0, 1, 0));
      const R u1 = _mm512_shuffle_f64x2(t[e], t[2 + e], _MM_SHUFFLE(3, 2, 3, 2));
      const R u2 = _mm512_shuffle_f64x2(t[4 + e], t[6 + e], _MM_SHUFFLE(1, 0, 1, 0));
      const R u3 = _mm512_shuffle_f64x2(t[4 + e], t[6 + e], _MM_SHUFFLE(3, 2, 3, 2));
      r[e] = _mm512_shuffle_f64x2(u0, u2, _MM_SHUFFLE(2, 0, 2, 0));
      r[2 + e] = _mm512_shuffle_f64x2(u0, u2, _MM_SHUFFLE(3, 1, 3, 1));
      r[4 + e] = _mm512_shuffle_f64x2(u1, u3, _MM_SHUFFLE(2, 0, 2, 0));
      r[6 + e] = _mm512_shuffle_f64x2(u1, u3, _MM_SHUFFLE(3, 1, 3, 1));
    }
  }
};

#include "conv_impl.h"

}  // namespace avx512

void get_kernels_avx512(Kernels<float>* f, Kernels<double>* d) {
  avx512::fill_kernels<avx512::VF>(f);
  avx512::fill_kernels<avx512::VD>(d);
}

}  // namespace conv
}  // namespace fastdl
