// Softmax row primitives with AVX-512 (see softmax.h): vector max and a vector exp
// (Cephes-style: n = round(x / ln2), degree-5 polynomial for exp(r), scaled by 2^n).
#include <immintrin.h>

#include <cstdint>

#include "softmax.h"

namespace fastdl {

namespace {

// exp(x) for x <= 0 up to -inf (-> 0); NaN propagates; about 1 ulp.
inline __m512 exp16(__m512 x) {
  // max/min with the constant first return x when x is NaN.
  x = _mm512_min_ps(_mm512_set1_ps(88.3762626647949f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);  // p * 2^n, underflows to 0
}

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
