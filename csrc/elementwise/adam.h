// Optimizer kernels: parameter updates in place, element by element.
#pragma once

#include <cstdint>

namespace fastdl {

// One Adam step on n elements, in place on p, m and v (g is only read):
//   m += c1 * (g - m);  v += c2 * (g * g - v);  m, v below T's smallest normal number := 0;
//   p -= lr * m / (sqrt(v) + eps)
// with c1 = 1 - beta1, c2 = 1 - beta2 and lr the bias-corrected step size.  Every operation is
// rounded on its own, in this order, as NumPy does (this file is built without FMA contraction),
// so the result is bit for bit the reference's.  The arrays must not overlap.
template <class T>
void adam_update(T* p, const T* g, T* m, T* v, int64_t n, T lr, T c1, T c2, T eps);

}  // namespace fastdl
