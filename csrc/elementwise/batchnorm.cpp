// Batch normalisation (batchnorm.h): plain loops over rows of D features, which the compiler
// vectorises along D; each intermediate rounded to T as NumPy rounds it.
#include "batchnorm.h"

#include <cmath>
#include <vector>

namespace fastdl {

template <class T>
void batchnorm_forward(const T* x, const T* gamma, const T* beta, T eps, int64_t N, int64_t D, T* y, T* xc, T* xn,
                       T* std, T* mu, T* var) {
  const T n = static_cast<T>(N);
  for (int64_t d = 0; d < D; ++d) mu[d] = T(0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t d = 0; d < D; ++d) mu[d] += x[i * D + d];
  for (int64_t d = 0; d < D; ++d) {
    mu[d] /= n;
    var[d] = T(0);
  }
  for (int64_t i = 0; i < N; ++i)
    for (int64_t d = 0; d < D; ++d) {
      const T c = x[i * D + d] - mu[d];
      xc[i * D + d] = c;
      var[d] += c * c;
    }
  for (int64_t d = 0; d < D; ++d) {
    var[d] /= n;
    std[d] = std::sqrt(var[d] + eps);
  }
  for (int64_t i = 0; i < N; ++i)
    for (int64_t d = 0; d < D; ++d) {
      const T v = xc[i * D + d] / std[d];
      xn[i * D + d] = v;
      y[i * D + d] = gamma[d] * v + beta[d];
    }
}

template <class T>
void batchnorm_backward(const T* dout, const T* xc, const T* xn, const T* std, const T* gamma, int64_t N, int64_t D,
                        T* dx, T* dgamma, T* dbeta) {
  const T n = static_cast<T>(N);
  std::vector<T> dstd(static_cast<size_t>(D), T(0)), dmu(static_cast<size_t>(D), T(0));
  for (int64_t d = 0; d < D; ++d) dgamma[d] = dbeta[d] = T(0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t d = 0; d < D; ++d) {
      const T g = dout[i * D + d];
      dbeta[d] += g;
      dgamma[d] += xn[i * D + d] * g;
      // dstd = -sum((dxn * xc) / (std * std)), dxn = gamma * dout
      dstd[d] += (gamma[d] * g * xc[i * D + d]) / (std[d] * std[d]);
    }
  const T two_n = static_cast<T>(2.0 / static_cast<double>(N));
  for (int64_t d = 0; d < D; ++d) dstd[d] = -dstd[d];
  for (int64_t i = 0; i < N; ++i)
    for (int64_t d = 0; d < D; ++d) {
      const T dvar = T(0.5) * dstd[d] / std[d];
      const T c = (gamma[d] * dout[i * D + d]) / std[d] + two_n * xc[i * D + d] * dvar;
      dx[i * D + d] = c;
      dmu[d] += c;
    }
  for (int64_t i = 0; i < N; ++i)
    for (int64_t d = 0; d < D; ++d) dx[i * D + d] -= dmu[d] / n;
}

template void batchnorm_forward<float>(const float*, const float*, const float*, float, int64_t, int64_t, float*,
                                       float*, float*, float*, float*, float*);
template void batchnorm_forward<double>(const double*, const double*, const double*, double, int64_t, int64_t,
                                        double*, double*, double*, double*, double*, double*);
template void batchnorm_backward<float>(const float*, const float*, const float*, const float*, const float*, int64_t,
                                        int64_t, float*, float*, float*);
template void batchnorm_backward<double>(const double*, const double*, const double*, const double*, const double*,
                                         int64_t, int64_t, double*, double*, double*);

}  // namespace fastdl
