// Convolution kernels for any CPU: the same tiles over plain scalars (one lane), compiled
// for the baseline ISA.  Used when cpu_level() is scalar (or FASTDL_CPU=scalar).
#include <cstdint>

#include "kernel_table.h"

namespace fastdl {
namespace conv {
namespace scalar {

constexpr int tile_rows(int v) { return v == 1 ? 8 : v == 2 ? 4 : 2; }

template <class Real>
struct Lane {
  using T = Real;
  using R = Real;
  static constexpr int W = 1;
  static constexpr int VMAX = 4;
  static constexpr int FLAT_F = 4, FLAT_V = 2, DW_F = 2, DW_T = 4;
  static constexpr int mmax(int v) { return tile_rows(v); }
  static R zero() { return R(0); }
  static R load(const T* p) { return *p; }
  static void store(T* p, R r) { *p = r; }
  static R set1(T t) { return t; }
  static R fma(R a, R b, R c) { return a * b + c; }
  static R add(R a, R b) { return a + b; }
  static R relu(R a) { return (a > R(0) || a != a) ? a : R(0); }
  // a * (y > 0 ? 1 : 0), as relu_backward multiplies by its mask (NaN * 0 is NaN, -5 * 0 is -0).
  static R gate(R a, R y) { return a * (y > R(0) ? R(1) : R(0)); }
  static R load_n(const T* p, int n) { return n > 0 ? *p : R(0); }
  static void store_n(T* p, R r, int n) {
    if (n > 0) *p = r;
  }
  static void transpose(R*) {}
};
using VF = Lane<float>;
using VD = Lane<double>;

#include "kernels.h"

}  // namespace scalar

void get_kernels_scalar(Kernels<float>* f, Kernels<double>* d) {
  scalar::fill_kernels<scalar::VF>(f);
  scalar::fill_kernels<scalar::VD>(d);
}

}  // namespace conv
}  // namespace fastdl
