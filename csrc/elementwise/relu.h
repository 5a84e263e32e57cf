// Elementwise kernels for the activation layers, one pass each.
#pragma once

#include <cstdint>

namespace fastdl {

// y = max(x, 0) (NaN kept as it is, -0 -> +0, as np.maximum(x, 0)) and mask = x > 0.
template <class T>
void relu_forward(const T* x, T* y, bool* mask, int64_t n);

// dx = dout * mask: a multiply by 1 or 0, as NumPy's (NaN * 0 is NaN, -5 * 0 is -0).
template <class T>
void relu_backward(const T* dout, const bool* mask, T* dx, int64_t n);

}  // namespace fastdl
