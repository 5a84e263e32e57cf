// Fused softmax cross-entropy (see softmax.h): portable code, parallel rows, SIMD dispatch.
#include "softmax.h"

#include <cmath>
#include <limits>
#include <vector>

#include "support/parallel.h"
#include "support/cpu.h"

namespace fastdl {

namespace {

template <class T>
T row_max_portable(const T* z, int64_t K) {
  T m = z[0];
  for (int64_t i = 1; i < K; ++i) m = z[i] > m ? z[i] : m;
  return m;
}

template <class T>
double row_exp_sum_portable(const T* z, T m, T* e, int64_t K) {
  double s = 0.0;
  for (int64_t i = 0; i < K; ++i) {
    e[i] = std::exp(z[i] - m);
    s += e[i];
  }
  return s;
}

struct RowOps {
  float (*max)(const float*, int64_t);
  double (*exp_sum)(const float*, float, float*, int64_t);
};

RowOps pick_f32() {
  switch (cpu_level()) {
    case CpuLevel::AVX512: return {row_max_f32_avx512, row_exp_sum_f32_avx512};
    case CpuLevel::AVX2: return {row_max_f32_avx2, row_exp_sum_f32_avx2};
    default: return {row_max_portable<float>, row_exp_sum_portable<float>};
  }
}

// e = exp(z - m) into dz; returns (m, sum of e).
template <class T>
double exp_row(const T* z, T* dz, int64_t K, T& m) {
  if constexpr (sizeof(T) == 4) {
    static const RowOps ops = pick_f32();
    m = ops.max(z, K);
    return ops.exp_sum(z, m, dz, K);
  } else {
    m = row_max_portable<T>(z, K);
    return row_exp_sum_portable<T>(z, m, dz, K);
  }
}

// Runs row(i) -> loss of row i on all rows in parallel; returns the mean, summed in a
// fixed order so the result does not depend on the thread count.
template <class F>
double mean_over_rows(int64_t N, int64_t K, F&& row) {
  if (N == 0) return std::numeric_limits<double>::quiet_NaN();
  std::vector<double> loss(static_cast<size_t>(N));
  parallel_for(N, N * K * 4, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) loss[i] = row(i);
  });
  double total = 0.0;
  for (double l : loss) total += l;
  return total / static_cast<double>(N);
}

}  // namespace

template <class T>
double softmax_xent_labels(const T* z, const int64_t* t, T* dz, int64_t N, int64_t K) {
  const T invN = T(1) / static_cast<T>(N > 0 ? N : 1);
  return mean_over_rows(N, K, [&](int64_t i) -> double {
    const T* zi = z + i * K;
    T* di = dz + i * K;
    T m;
    const double s = exp_row<T>(zi, di, K, m);
    const T scale = static_cast<T>(1.0 / s) * invN;
    for (int64_t k = 0; k < K; ++k) di[k] *= scale;
    di[t[i]] -= invN;
    return std::log(s) - static_cast<double>(zi[t[i]] - m);
  });
}

template <class T>
double softmax_xent_targets(const T* z, const T* t, T* dz, int64_t N, int64_t K) {
  const T invN = T(1) / static_cast<T>(N > 0 ? N : 1);
  return mean_over_rows(N, K, [&](int64_t i) -> double {
    if (K == 0) return 0.0;
    const T* zi = z + i * K;
    const T* ti = t + i * K;
    T* di = dz + i * K;
    T m;
    const double s = exp_row<T>(zi, di, K, m);
    const T scale = static_cast<T>(1.0 / s) * invN;
    const double logs = std::log(s);
    double loss = 0.0;
    for (int64_t k = 0; k < K; ++k) {
      di[k] = di[k] * scale - ti[k] * invN;
      if (ti[k] != T(0)) loss -= static_cast<double>(ti[k]) * (static_cast<double>(zi[k] - m) - logs);
    }
    return loss;
  });
}

template double softmax_xent_labels<float>(const float*, const int64_t*, float*, int64_t, int64_t);
template double softmax_xent_labels<double>(const double*, const int64_t*, double*, int64_t, int64_t);
template double softmax_xent_targets<float>(const float*, const float*, float*, int64_t, int64_t);
template double softmax_xent_targets<double>(const double*, const double*, double*, int64_t, int64_t);

}  // namespace fastdl
