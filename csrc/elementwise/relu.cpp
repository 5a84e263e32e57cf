// Elementwise kernels (see relu.h): portable code that GCC vectorises with the baseline
// SIMD; parallel over contiguous ranges.
#include "relu.h"

#include "support/parallel.h"

namespace fastdl {

template <class T>
void relu_forward(const T* x, T* y, bool* mask, int64_t n) {
  parallel_for(n, n, [=](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T v = x[i];
      const bool pos = v > T(0);
      mask[i] = pos;
      y[i] = (pos || v != v) ? v : T(0);
    }
  });
}

template <class T>
void relu_backward(const T* dout, const bool* mask, T* dx, int64_t n) {
  // A multiply by 1 or 0, as NumPy's dout * mask: no branch on the (random) mask.  The mask
  // bytes (0 or 1) are read as uint8 and widened through int32: GCC vectorises that
  // conversion, not bool -> float.
  const uint8_t* m = reinterpret_cast<const uint8_t*>(mask);
  parallel_for(n, n, [=](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) dx[i] = dout[i] * static_cast<T>(static_cast<int32_t>(m[i]));
  });
}

template void relu_forward<float>(const float*, float*, bool*, int64_t);
template void relu_forward<double>(const double*, double*, bool*, int64_t);
template void relu_backward<float>(const float*, const bool*, float*, int64_t);
template void relu_backward<double>(const double*, const bool*, double*, int64_t);

}  // namespace fastdl
