// Convolution dispatch (see conv.h): the per-CPU kernel table chosen once at run time, the
// FASTDL_CONV override of the kernel family, and the split of the batch into groups.
#include <cstdlib>
#include <cstring>

#include "schedule.h"
#include "support/cpu.h"

namespace fastdl {
namespace conv {

namespace {

struct KernelSet {
  Kernels<float> f;
  Kernels<double> d;
};

const KernelSet& kernel_set() {
  static const KernelSet ks = [] {
    KernelSet k;
    switch (cpu_level()) {
      case CpuLevel::AVX512: get_kernels_avx512(&k.f, &k.d); break;
      case CpuLevel::AVX2: get_kernels_avx2(&k.f, &k.d); break;
      default: get_kernels_scalar(&k.f, &k.d); break;
    }
    return k;
  }();
  return ks;
}

// FASTDL_CONV=tile or FASTDL_CONV=flat forces one kernel family where both apply (testing).
enum class Path { Auto, Tile, Flat };

Path forced_path() {
  static const Path p = [] {
    const char* e = std::getenv("FASTDL_CONV");
    if (e && std::strcmp(e, "tile") == 0) return Path::Tile;
    if (e && std::strcmp(e, "flat") == 0) return Path::Flat;
    return Path::Auto;
  }();
  return p;
}

}  // namespace

template <>
const Kernels<float>& kernels<float>() { return kernel_set().f; }
template <>
const Kernels<double>& kernels<double>() { return kernel_set().d; }

bool use_flat(int64_t stride, int64_t nout, int64_t reduction, int lanes, bool same_direct) {
  if (stride != 1) return false;
  if (forced_path() != Path::Auto) return forced_path() == Path::Flat;
  return nout <= lanes || reduction <= 32 || same_direct;
}

std::vector<std::pair<int64_t, int>> make_groups(int64_t N, int mmax, int nt) {
  std::vector<std::pair<int64_t, int>> g;
  if (N <= 0) return g;
  int64_t ng = ceil_div(N, mmax);
  if (nt > 1) ng = std::min<int64_t>(ceil_div(ng, nt) * nt, N);
  const int64_t base = N / ng, rem = N % ng;
  int64_t n0 = 0;
  for (int64_t i = 0; i < ng; ++i) {
    const int m = static_cast<int>(base + (i < rem ? 1 : 0));
    g.emplace_back(n0, m);
    n0 += m;
  }
  return g;
}

}  // namespace conv
}  // namespace fastdl
