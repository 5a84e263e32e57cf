// im2col / col2im (see im2col.h): one output row of col per window position, written
// contiguously; the reads of a sample stay in cache.
#include "im2col.h"

#include <algorithm>
#include <cstring>

#include "support/parallel.h"
#include "support/cpu.h"

namespace fastdl {

namespace {

// Valid kx range [lo, hi) of a window whose first column is x0 on a row of width W.
inline void clip(int64_t x0, int64_t k, int64_t W, int64_t& lo, int64_t& hi) {
  lo = std::max<int64_t>(0, -x0);
  hi = std::min<int64_t>(k, W - x0);
}

// Calls row(k, inside, src, lo, hi) for every tap row (window, c, ky) of one sample: k is the
// row's first column in col, inside false if that input row is padding, src the offset in x
// of the window row's first tap (which may lie left of the row), [lo, hi) the taps inside.
template <class Row>
void for_tap_rows(const Window& w, Row&& row) {
  const int64_t K = w.C * w.kh * w.kw, HW = w.H * w.W;
  for (int64_t oy = 0; oy < w.OH; ++oy) {
    const int64_t y0 = oy * w.stride - w.pad;
    for (int64_t ox = 0; ox < w.OW; ++ox) {
      const int64_t x0 = ox * w.stride - w.pad;
      int64_t lo, hi;
      clip(x0, w.kw, w.W, lo, hi);
      int64_t k = (oy * w.OW + ox) * K;
      for (int64_t c = 0; c < w.C; ++c) {
        for (int64_t ky = 0; ky < w.kh; ++ky, k += w.kw) {
          const int64_t iy = y0 + ky;
          row(k, iy >= 0 && iy < w.H, c * HW + iy * w.W + x0, lo, hi);
        }
      }
    }
  }
}

template <class T>
void im2col_sample(const T* x, T* col, const Window& w) {
  for_tap_rows(w, [&](int64_t k, bool inside, int64_t src, int64_t lo, int64_t hi) {
    T* d = col + k;
    if (!inside || lo >= hi) {
      std::fill(d, d + w.kw, T(0));
      return;
    }
    for (int64_t kx = 0; kx < lo; ++kx) d[kx] = T(0);
    for (int64_t kx = lo; kx < hi; ++kx) d[kx] = x[src + kx];
    for (int64_t kx = hi; kx < w.kw; ++kx) d[kx] = T(0);
  });
}

template <class T>
void col2im_sample(const T* col, T* x, const Window& w) {
  std::memset(x, 0, sizeof(T) * w.C * w.H * w.W);
  for_tap_rows(w, [&](int64_t k, bool inside, int64_t dst, int64_t lo, int64_t hi) {
    if (!inside) return;
    for (int64_t kx = lo; kx < hi; ++kx) x[dst + kx] += col[k + kx];
  });
}

template <class T>
using SampleFn = void (*)(const T*, T*, const Window&);

// The AVX-512 masked version (f32 or f64 by T) when the CPU has it and a window row fits
// one vector, else the portable one.
template <class T>
SampleFn<T> pick(const Window& w, SampleFn<float> f32, SampleFn<double> f64, SampleFn<T> portable) {
  if (cpu_level() == CpuLevel::AVX512 && w.kw * static_cast<int64_t>(sizeof(T)) <= 64) {
    if constexpr (sizeof(T) == 4) return f32;
    else return f64;
  }
  return portable;
}

}  // namespace

template <class T>
void im2col(const T* x, T* col, const Window& w) {
  const int64_t in = w.C * w.H * w.W, rows = w.OH * w.OW, K = w.C * w.kh * w.kw;
  const SampleFn<T> f = pick<T>(w, im2col_sample_f32_avx512, im2col_sample_f64_avx512, im2col_sample<T>);
  parallel_for(w.N, w.N * rows * K, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) f(x + n * in, col + n * rows * K, w);
  });
}

template <class T>
void col2im(const T* col, T* x, const Window& w) {
  const int64_t in = w.C * w.H * w.W, rows = w.OH * w.OW, K = w.C * w.kh * w.kw;
  const SampleFn<T> f = pick<T>(w, col2im_sample_f32_avx512, col2im_sample_f64_avx512, col2im_sample<T>);
  parallel_for(w.N, w.N * rows * K, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) f(col + n * rows * K, x + n * in, w);
  });
}

template void im2col<float>(const float*, float*, const Window&);
template void im2col<double>(const double*, double*, const Window&);
template void col2im<float>(const float*, float*, const Window&);
template void col2im<double>(const double*, double*, const Window&);

}  // namespace fastdl
