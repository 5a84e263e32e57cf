// fma_probe on AVX-512: 16-lane FMAs (kernels.h).
#include <immintrin.h>

#include "probe.h"
#include "kernels.h"

namespace fastdl {

namespace {
struct V512 {
  using reg = __m512;
  static constexpr int lanes = 16;
  static void storeu(float* p, reg a) { _mm512_storeu_ps(p, a); }
  static reg set1(float v) { return _mm512_set1_ps(v); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static float sum(reg a) { return _mm512_reduce_add_ps(a); }
};
}  // namespace

float fma_probe_avx512(int64_t iters) { return fma_probe_loop<V512>(iters); }
void store_probe_avx512(float* p, int64_t n, float v) { store_probe_loop<V512>(p, n, v); }

}  // namespace fastdl
