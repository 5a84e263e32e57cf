// Batch normalisation over a batch of N samples of D features (the book's BatchNormalization
// in training), in one call each way instead of about ten NumPy passes.  The sums over the
// batch run sample after sample, as NumPy's axis-0 sums of a C-contiguous array do.
#pragma once

#include <cstdint>

namespace fastdl {

// x (N, D), N >= 1 -> mu = mean of x, xc = x - mu, var = mean of xc^2, std = sqrt(var + eps),
// xn = xc / std, y = gamma * xn + beta (gamma, beta, mu, var, std: D each; the others N x D).
template <class T>
void batchnorm_forward(const T* x, const T* gamma, const T* beta, T eps, int64_t N, int64_t D, T* y, T* xc, T* xn,
                       T* std, T* mu, T* var);

// The forward's gradients from dout (N, D) and what it kept (xc, xn, std) -> dx (N, D),
// dgamma = sum of xn * dout, dbeta = sum of dout, with the book's formulas (dstd, dvar, dmu).
template <class T>
void batchnorm_backward(const T* dout, const T* xc, const T* xn, const T* std, const T* gamma, int64_t N, int64_t D,
                        T* dx, T* dgamma, T* dbeta);

}  // namespace fastdl
