// Convolution kernels for AVX2 + FMA (compiled with AVX2 flags; used when cpu_level() says so).
// 16 vector registers: tiles of up to 12x1, 6x2 or 4x3 accumulators.
#include <immintrin.h>

#include <cstdint>

#include "kernel_table.h"

namespace fastdl {
namespace conv {
namespace avx2 {

constexpr int tile_rows(int v) { return v == 1 ? 12 : v == 2 ? 6 : 4; }

struct VF {
  using T = float;
  using R = __m256;
  static constexpr int W = 8;
  static constexpr int VMAX = 3;
  static constexpr int FLAT_F = 3, FLAT_V = 3, DW_F = 2, DW_T = 5;
  static constexpr int mmax(int v) { return tile_rows(v); }
  static R zero() { return _mm256_setzero_ps(); }
  static R load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, R r) { _mm256_storeu_ps(p, r); }
  static R set1(T t) { return _mm256_set1_ps(t); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  // max(a, 0) gives +0 for -0 (the second operand on a tie) and 0 for NaN, put back by the blend.
  static R relu(R a) { return _mm256_blendv_ps(_mm256_max_ps(a, zero()), a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q)); }
  // a * (y > 0 ? 1 : 0), as relu_backward multiplies by its mask (NaN * 0 is NaN, -5 * 0 is -0).
  static R gate(R a, R y) { return _mm256_mul_ps(a, _mm256_and_ps(_mm256_cmp_ps(y, zero(), _CMP_GT_OQ), set1(1))); }
  static __m256i mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static R load_n(const T* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static void store_n(T* p, R r, int n) { _mm256_maskstore_ps(p, mask(n), r); }
  // r[k] becomes column k of the 8x8 matrix whose rows are r[0..7].
  __attribute__((always_inline)) static void transpose(R* r) {
    R t[8], s[8];
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int h = 0; h < 2; ++h) {  // s[4h+j], 128-bit lane L: rows 4h..4h+3 of column 4L+j
      s[4 * h] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(1, 0, 1, 0));
      s[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(3, 2, 3, 2));
      s[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(1, 0, 1, 0));
      s[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int j = 0; j < 4; ++j) {
      r[j] = _mm256_permute2f128_ps(s[j], s[4 + j], 0x20);
      r[4 + j] = _mm256_permute2f128_ps(s[j], s[4 + j], 0x31);
    }
  }
};

struct VD {
  using T = double;
  using R = __m256d;
  static constexpr int W = 4;
  static constexpr int VMAX = 3;
  static constexpr int FLAT_F = 3, FLAT_V = 3, DW_F = 2, DW_T = 5;
  static constexpr int mmax(int v) { return tile_rows(v); }
  static R zero() { return _mm256_setzero_pd(); }
  static R load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, R r) { _mm256_storeu_pd(p, r); }
  static R set1(T t) { return _mm256_set1_pd(t); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
  static R add(R a, R b) { return _mm256_add_pd(a, b); }
  static R relu(R a) { return _mm256_blendv_pd(_mm256_max_pd(a, zero()), a, _mm256_cmp_pd(a, a, _CMP_UNORD_Q)); }
  static R gate(R a, R y) { return _mm256_mul_pd(a, _mm256_and_pd(_mm256_cmp_pd(y, zero(), _CMP_GT_OQ), set1(1))); }
  static __m256i mask(int n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static R load_n(const T* p, int n) { return _mm256_maskload_pd(p, mask(n)); }
  static void store_n(T* p, R r, int n) { _mm256_maskstore_pd(p, mask(n), r); }
  // r[k] becomes column k of the 4x4 matrix whose rows are r[0..3].
  __attribute__((always_inline)) static void transpose(R* r) {
    const R t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const R t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
  }
};

#include "kernels.h"

}  // namespace avx2

void get_kernels_avx2(Kernels<float>* f, Kernels<double>* d) {
  avx2::fill_kernels<avx2::VF>(f);
  avx2::fill_kernels<avx2::VD>(d);
}

}  // namespace conv
}  // namespace fastdl
