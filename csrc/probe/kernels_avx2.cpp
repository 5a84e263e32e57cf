// fma_probe on AVX2+FMA: 8-lane FMAs (kernels.h).
#include <immintrin.h>

#include "probe.h"
#include "kernels.h"

namespace fastdl {

namespace {
struct V256 {
  using reg = __m256;
  static constexpr int lanes = 8;
  static void storeu(float* p, reg a) { _mm256_storeu_ps(p, a); }
  static reg set1(float v) { return _mm256_set1_ps(v); }
  static reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static float sum(reg a) {
    alignas(32) float v[8];
    _mm256_store_ps(v, a);
    return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
  }
};
}  // namespace

float fma_probe_avx2(int64_t iters) { return fma_probe_loop<V256>(iters); }
void store_probe_avx2(float* p, int64_t n, float v) { store_probe_loop<V256>(p, n, v); }

}  // namespace fastdl
