// Max pooling 2x2 / stride 2 / no padding with AVX2 (compiled with AVX2+FMA flags; called
// only when cpu_level() says so).  One plane per call, 8 windows per step, scalar row tail.
#include <immintrin.h>

#include <cstdint>

#include "pool.h"

namespace fastdl {

namespace {

// 16 consecutive floats at p -> (even-indexed, odd-indexed) elements, 8 each.
inline void deinterleave(const float* p, __m256& ev, __m256& od) {
  const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  ev = _mm256_castpd_ps(_mm256_permute4x64_pd(
      _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0)));
  od = _mm256_castpd_ps(_mm256_permute4x64_pd(
      _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)));
}

// c replaces best where it is strictly greater or the first NaN; off follows.
inline void update(__m256 c, __m256& best, __m256i o, __m256i& off) {
  const __m256 k = _mm256_or_ps(
      _mm256_cmp_ps(c, best, _CMP_GT_OQ),
      _mm256_and_ps(_mm256_cmp_ps(c, c, _CMP_UNORD_Q), _mm256_cmp_ps(best, best, _CMP_ORD_Q)));
  best = _mm256_blendv_ps(best, c, k);
  off = _mm256_blendv_epi8(off, o, _mm256_castps_si256(k));
}

inline bool beats(float v, float best) { return v > best || (v != v && best == best); }

}  // namespace

void maxpool2x2_forward_f32_avx2(const float* x, float* y, int64_t* am, int64_t H, int64_t W) {
  const int64_t OH = H / 2, OW = W / 2;
  const __m256i lane2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  const __m256i o1 = _mm256_set1_epi32(1), oW = _mm256_set1_epi32(static_cast<int>(W)),
                oW1 = _mm256_set1_epi32(static_cast<int>(W + 1));
  for (int64_t oy = 0; oy < OH; ++oy) {
    const float* r0 = x + 2 * oy * W;
    const float* r1 = r0 + W;
    float* yr = y + oy * OW;
    int64_t* ar = am + oy * OW;
    const int64_t base = 2 * oy * W;
    int64_t ox = 0;
    for (; ox + 8 <= OW; ox += 8) {
      __m256 best, c1, c2, c3;
      deinterleave(r0 + 2 * ox, best, c1);
      deinterleave(r1 + 2 * ox, c2, c3);
      __m256i off = _mm256_setzero_si256();
      update(c1, best, o1, off);
      update(c2, best, oW, off);
      update(c3, best, oW1, off);
      _mm256_storeu_ps(yr + ox, best);
      const __m256i idx = _mm256_add_epi32(_mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(base + 2 * ox)), lane2), off);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(ar + ox), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(idx)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(ar + ox + 4), _mm256_cvtepi32_epi64(_mm256_extracti128_si256(idx, 1)));
    }
    for (; ox < OW; ++ox) {
      float best = r0[2 * ox];
      int64_t off = 0;
      if (beats(r0[2 * ox + 1], best)) { best = r0[2 * ox + 1]; off = 1; }
      if (beats(r1[2 * ox], best)) { best = r1[2 * ox]; off = W; }
      if (beats(r1[2 * ox + 1], best)) { best = r1[2 * ox + 1]; off = W + 1; }
      yr[ox] = best;
      ar[ox] = base + 2 * ox + off;
    }
  }
}

}  // namespace fastdl
