// Softmax row primitives with AVX2+FMA (see softmax.h): vector max and a vector exp
// (Cephes-style: n = round(x / ln2), degree-5 polynomial for exp(r), scaled by 2^n).
#include <immintrin.h>

#include <cstdint>

#include "softmax.h"

namespace fastdl {

namespace {

// exp(x) for x <= 0 up to -inf (-> 0, denormal results flushed to 0); NaN propagates.
inline __m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3365478515625f);
  const __m256 keep = _mm256_cmp_ps(x, lo, _CMP_NLT_UQ);  // x >= lo or NaN
  // max/min with the constant first return x when x is NaN.
  x = _mm256_min_ps(_mm256_set1_ps(88.3762626647949f), _mm256_max_ps(lo, x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n built in the exponent field; n is in [-126, 127] after the clamp.
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), keep);
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

inline __m256d widen_sum(__m256 v) {
  return _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

}  // namespace

float row_max_f32_avx2(const float* z, int64_t K) {
  __m256 m0 = _mm256_set1_ps(z[0]), m1 = m0;
  int64_t i = 0;
  for (; i + 16 <= K; i += 16) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(z + i));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(z + i + 8));
  }
  for (; i + 8 <= K; i += 8) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(z + i));
  float m = hmax(_mm256_max_ps(m0, m1));
  for (; i < K; ++i) m = z[i] > m ? z[i] : m;
  return m;
}

double row_exp_sum_f32_avx2(const float* z, float m, float* e, int64_t K) {
  const __m256 vm = _mm256_set1_ps(m);
  __m256d s = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= K; i += 8) {
    const __m256 v = exp8(_mm256_sub_ps(_mm256_loadu_ps(z + i), vm));
    _mm256_storeu_ps(e + i, v);
    s = _mm256_add_pd(s, widen_sum(v));
  }
  if (i < K) {
    alignas(32) float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t j = i; j < K; ++j) buf[j - i] = z[j];
    __m256 v = exp8(_mm256_sub_ps(_mm256_load_ps(buf), vm));
    _mm256_store_ps(buf, v);
    for (int64_t j = i; j < K; ++j) {
      e[j] = buf[j - i];
      s = _mm256_add_pd(s, _mm256_setr_pd(buf[j - i], 0.0, 0.0, 0.0));
    }
  }
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

}  // namespace fastdl
