// Optimizer kernels (see adam.h).  Portable code: GCC vectorises the loop (sqrt and division
// with -fno-math-errno), for two SIMD levels through target_clones; CMakeLists.txt builds this
// file with -ffp-contract=off so that no multiply-add is fused and the rounding matches NumPy's.
#include "adam.h"

#include <cmath>
#include <limits>

#include "support/parallel.h"

namespace fastdl {

namespace {

// The loop over [begin, end).  target_clones: GCC compiles it for AVX2 and for the baseline
// and picks one when the library loads (the results are the same on each: no multiply-add is
// fused in this file, and sqrt and division are exact).  The flush below made the baseline
// SSE loop 17% slower (0.247 -> 0.289 ms on 434k floats); the AVX2 loop with it takes what
// the SSE loop without it took.  An AVX-512 clone was slower than the AVX2 one (0.25-0.28 ms).
template <class T>
inline void adam_range(T* __restrict pp, const T* __restrict gp, T* __restrict mp, T* __restrict vp,
                       int64_t begin, int64_t end, T lr, T c1, T c2, T eps) {
  // m and v below the smallest normal number are stored as 0, as the reference: a dead
  // unit's m decays into subnormals after some 700 steps, and every operation on one takes
  // 15-55x as long (SimpleConvNet on MNIST: 6.9 -> 13 ms a step).
  const T tiny = std::numeric_limits<T>::min();
  for (int64_t i = begin; i < end; ++i) {
    const T gi = gp[i];
    T mi = mp[i] + c1 * (gi - mp[i]);
    T vi = vp[i] + c2 * (gi * gi - vp[i]);
    mi = std::fabs(mi) < tiny ? T(0) : mi;
    vi = std::fabs(vi) < tiny ? T(0) : vi;
    mp[i] = mi;
    vp[i] = vi;
    pp[i] = pp[i] - lr * mi / (std::sqrt(vi) + eps);
  }
}

// target_clones takes functions, not templates: one overload per dtype.
__attribute__((target_clones("avx2", "default"))) void adam_loop(
    float* pp, const float* gp, float* mp, float* vp, int64_t begin, int64_t end, float lr, float c1, float c2,
    float eps) {
  adam_range(pp, gp, mp, vp, begin, end, lr, c1, c2, eps);
}

__attribute__((target_clones("avx2", "default"))) void adam_loop(
    double* pp, const double* gp, double* mp, double* vp, int64_t begin, int64_t end, double lr, double c1,
    double c2, double eps) {
  adam_range(pp, gp, mp, vp, begin, end, lr, c1, c2, eps);
}

}  // namespace

template <class T>
void adam_update(T* p, const T* g, T* m, T* v, int64_t n, T lr, T c1, T c2, T eps) {
  parallel_for(n, 8 * n, [=](int64_t begin, int64_t end) { adam_loop(p, g, m, v, begin, end, lr, c1, c2, eps); });
}

template void adam_update<float>(float*, const float*, float*, float*, int64_t, float, float, float, float);
template void adam_update<double>(double*, const double*, double*, double*, int64_t, double, double, double,
                                  double);

}  // namespace fastdl
