// Elementwise kernels (see relu.h): portable code that GCC vectorises with the baseline
// SIMD; parallel over contiguous ranges.
#include "relu.h"

#include <cstring>

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

// The bits of T as an unsigned integer of its size.
template <class T>
struct BitsOf;
template <>
struct BitsOf<float> { using U = uint32_t; };
template <>
struct BitsOf<double> { using U = uint64_t; };

template <class T>
void relu_backward_from_output(const T* dout, const T* y, T* dx, int64_t n) {
  // dout times 1 or 0, the factor made from the comparison's all-ones mask and the bits of
  // 1: GCC turns a plain (y > 0 ? 1 : 0) into a branch that mispredicts on y's random signs
  // (6x slower), the bitwise form into compare / and / multiply vectors.
  using U = typename BitsOf<T>::U;
  U one_bits;
  const T one = T(1);
  std::memcpy(&one_bits, &one, sizeof(T));
  parallel_for(n, n, [=](int64_t begin, int64_t end) {
    const T* __restrict d = dout;
    const T* __restrict yy = y;
    T* __restrict o = dx;
    for (int64_t i = begin; i < end; ++i) {
      const U k = (U(0) - static_cast<U>(yy[i] > T(0))) & one_bits;
      T f;
      std::memcpy(&f, &k, sizeof(T));
      o[i] = d[i] * f;
    }
  });
}

template void relu_backward_from_output<float>(const float*, const float*, float*, int64_t);
template void relu_backward_from_output<double>(const double*, const double*, double*, int64_t);
template void relu_forward<float>(const float*, float*, bool*, int64_t);
template void relu_forward<double>(const double*, double*, bool*, int64_t);
template void relu_backward<float>(const float*, const bool*, float*, int64_t);
template void relu_backward<double>(const double*, const bool*, double*, int64_t);

}  // namespace fastdl
