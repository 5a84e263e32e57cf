// Fused softmax + cross-entropy, one pass over each row (plus one to scale the gradient).
#pragma once

#include <cstdint>

namespace fastdl {

// logits z (N, K); t int64 labels (N,) or a target distribution (N, K) of z's type.
// Writes dz = (softmax(z) - onehot(t)) / N and returns the mean loss, accumulated in
// double (NaN when N == 0).  A target weight of 0 contributes 0 even against a -inf logit.
template <class T>
double softmax_xent_labels(const T* z, const int64_t* t, T* dz, int64_t N, int64_t K);
template <class T>
double softmax_xent_targets(const T* z, const T* t, T* dz, int64_t N, int64_t K);

// SIMD row primitives (kernels_avx2.cpp / kernels_avx512.cpp), float32:
// the maximum of z[0..K), K >= 1 (NaN handling is left to the caller's sum);
float row_max_f32_avx2(const float* z, int64_t K);
float row_max_f32_avx512(const float* z, int64_t K);
// e[i] = exp(z[i] - m), returns the sum of e in double.
double row_exp_sum_f32_avx2(const float* z, float m, float* e, int64_t K);
double row_exp_sum_f32_avx512(const float* z, float m, float* e, int64_t K);

}  // namespace fastdl
