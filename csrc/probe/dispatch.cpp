// Dispatch of the FMA probe (probe.h) on the SIMD level in use.
#include "probe.h"

#include "support/cpu.h"

namespace fastdl {

namespace {
constexpr int64_t kChains = 12;
}

int64_t fma_probe_flops_per_iter() {
  switch (cpu_level()) {
    case CpuLevel::AVX512: return kChains * 16 * 2;
    case CpuLevel::AVX2: return kChains * 8 * 2;
    default: return 0;
  }
}

float fma_probe(int64_t iters) {
  switch (cpu_level()) {
    case CpuLevel::AVX512: return fma_probe_avx512(iters);
    case CpuLevel::AVX2: return fma_probe_avx2(iters);
    default: return 0.0f;
  }
}

void store_probe(float* p, int64_t n, float v) {
  switch (cpu_level()) {
    case CpuLevel::AVX512: store_probe_avx512(p, n, v); break;
    case CpuLevel::AVX2: store_probe_avx2(p, n, v); break;
    default:
      for (int64_t i = 0; i < n; ++i) p[i] = v;
  }
}

}  // namespace fastdl
