// Softmax row primitives with AVX-512 (see softmax.h): vector max and the vector exp of
// support/exp_avx512.h.
#include <immintrin.h>

#include <cstdint>

#include "softmax.h"
#include "support/exp_avx512.h"

namespace fastdl {

namespace {

using avx512::exp16;

inline __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

}  // namespace

float row_max_f32_avx512(const float* z, int64_t K) {
  __m512 m0 = _mm512_set1_ps(z[0]), m1 = m0;
  int64_t i = 0;
  for (; i + 32 <= K; i += 32) {
    m0 = _mm512_max_ps(m0, _mm512_loadu_ps(z + i));
    m1 = _mm512_max_ps(m1, _mm512_loadu_ps(z + i + 16));
  }
  for (; i + 16 <= K; i += 16) m0 = _mm512_max_ps(m0, _mm512_loadu_ps(z + i));
  if (i < K) m1 = _mm512_mask_max_ps(m1, tail_mask(K - i), m1, _mm512_maskz_loadu_ps(tail_mask(K - i), z + i));
  return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}

double row_exp_sum_f32_avx512(const float* z, float m, float* e, int64_t K) {
  const __m512 vm = _mm512_set1_ps(m);
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= K; i += 16) {
    const __m512 v = exp16(_mm512_sub_ps(_mm512_loadu_ps(z + i), vm));
    _mm512_storeu_ps(e + i, v);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
  }
  if (i < K) {
    const __mmask16 k = tail_mask(K - i);
    const __m512 v = _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, z + i), vm)));
    _mm512_mask_storeu_ps(e + i, k, v);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}

}  // namespace fastdl
