// The FMA probe loop, written once for any vector type (the per-CPU probe body, included by
// kernels_avx2.cpp and kernels_avx512.cpp, each compiled with its own ISA flags).  V provides:
//   using reg;  static reg set1(float);  static reg fmadd(reg, reg, reg);
//   static reg add(reg, reg);  static float sum(reg).
#pragma once

#include <cstdint>

namespace fastdl {

// 12 independent chains: enough to cover the FMA latency on two ports (dispatch.cpp counts 12).
template <class V>
float fma_probe_loop(int64_t iters) {
  using R = typename V::reg;
  const R m = V::set1(0.999999f), c = V::set1(1e-6f);
  R a[12];
#pragma GCC unroll 12
  for (int k = 0; k < 12; ++k) a[k] = V::set1(1.0f + 0.1f * static_cast<float>(k));
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int k = 0; k < 12; ++k) a[k] = V::fmadd(a[k], m, c);
  }
  R s = a[0];
#pragma GCC unroll 12
  for (int k = 1; k < 12; ++k) s = V::add(s, a[k]);
  return V::sum(s);
}

// n floats of p set to v with full-width unaligned stores (the kernels' store instruction),
// the last partial vector element by element.  v is a run-time value, so that the compiler
// cannot turn the loop into memset (whose string stores may skip reading the lines first).
template <class V>
void store_probe_loop(float* p, int64_t n, float v) {
  const typename V::reg r = V::set1(v);
  int64_t i = 0;
  for (; i + V::lanes <= n; i += V::lanes) V::storeu(p + i, r);
  for (; i < n; ++i) p[i] = v;
}

}  // namespace fastdl
