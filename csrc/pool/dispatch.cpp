// Max pooling: portable kernels, parallel loops and the SIMD dispatch (see pool.h).
#include "pool.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "support/parallel.h"
#include "support/cpu.h"

namespace fastdl {

namespace {

// True if v should replace the current best: strictly greater, or the first NaN.
template <class T>
inline bool beats(T v, T best) {
  return v > best || (v != v && best == best);
}

// Any window shape: scan the real cells of each window (padding is -inf, so it never wins;
// starting from the first real cell also gives the all -inf rule).
template <class T>
void forward_plane(const T* x, T* y, int64_t* am, int64_t H, int64_t W, int64_t ph, int64_t pw,
                   int64_t s, int64_t p, int64_t OH, int64_t OW) {
  for (int64_t oy = 0; oy < OH; ++oy) {
    const int64_t y0 = oy * s - p;
    const int64_t ys = std::max<int64_t>(y0, 0), ye = std::min<int64_t>(y0 + ph, H);
    for (int64_t ox = 0; ox < OW; ++ox) {
      const int64_t x0 = ox * s - p;
      const int64_t xs = std::max<int64_t>(x0, 0), xe = std::min<int64_t>(x0 + pw, W);
      int64_t bi = ys * W + xs;
      T best = x[bi];
      for (int64_t iy = ys; iy < ye; ++iy) {
        const T* row = x + iy * W;
        for (int64_t ix = (iy == ys ? xs + 1 : xs); ix < xe; ++ix) {
          if (beats(row[ix], best)) {
            best = row[ix];
            bi = iy * W + ix;
          }
        }
      }
      y[oy * OW + ox] = best;
      am[oy * OW + ox] = bi;
    }
  }
}

// 2x2 windows, stride 2, no padding: the book's pooling, unrolled.
template <class T>
void forward_plane_2x2(const T* x, T* y, int64_t* am, int64_t H, int64_t W) {
  const int64_t OH = H / 2, OW = W / 2;
  for (int64_t oy = 0; oy < OH; ++oy) {
    const T* r0 = x + 2 * oy * W;
    const T* r1 = r0 + W;
    const int64_t base = 2 * oy * W;
    for (int64_t ox = 0; ox < OW; ++ox) {
      T best = r0[2 * ox];
      int64_t off = 0;
      if (beats(r0[2 * ox + 1], best)) { best = r0[2 * ox + 1]; off = 1; }
      if (beats(r1[2 * ox], best)) { best = r1[2 * ox]; off = W; }
      if (beats(r1[2 * ox + 1], best)) { best = r1[2 * ox + 1]; off = W + 1; }
      y[oy * OW + ox] = best;
      am[oy * OW + ox] = base + 2 * ox + off;
    }
  }
}

// Returns false if an argmax entry lies outside the plane (those entries are skipped);
// with relu, -1 marks an output that passes no gradient on.
template <class T>
bool backward_plane(const T* dy, const int64_t* am, T* dx, int64_t H, int64_t W, int64_t OHW, bool relu) {
  const int64_t HW = H * W;
  bool ok = true;
  std::memset(dx, 0, sizeof(T) * HW);
  for (int64_t i = 0; i < OHW; ++i) {
    const int64_t k = am[i];
    if (k >= 0 && k < HW) dx[k] += dy[i];
    else if (!(relu && k == -1)) ok = false;
  }
  return ok;
}

// The fused ReLU on one plane of pooled outputs (see pool.h).
template <class T>
void relu_plane(T* y, int64_t* am, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {  // no branches: half the values are negative
    const T v = y[i];
    const bool pos = v > T(0);
    am[i] = pos ? am[i] : -1;
    y[i] = pos || v != v ? v : T(0);
  }
}

using Fwd2x2F32 = void (*)(const float*, float*, int64_t*, int64_t, int64_t);

Fwd2x2F32 pick_fwd_f32() {
  return cpu_level() == CpuLevel::AVX2 ? maxpool2x2_forward_f32_avx2 : forward_plane_2x2<float>;
}

// One 2x2 plane; returns whether the ReLU was applied too (the AVX-512 kernels fuse it).
template <class T>
bool forward_2x2(const T* x, T* y, int64_t* am, int64_t H, int64_t W, bool relu) {
  static const bool avx512 = cpu_level() == CpuLevel::AVX512;
  if (avx512) {
    if constexpr (sizeof(T) == 4)
      maxpool2x2_forward_f32_avx512(x, y, am, H, W, relu);
    else
      maxpool2x2_forward_f64_avx512(x, y, am, H, W, relu);
    return true;
  }
  if constexpr (sizeof(T) == 4) {
    static const Fwd2x2F32 f = pick_fwd_f32();
    f(x, y, am, H, W);
  } else {
    forward_plane_2x2<double>(x, y, am, H, W);
  }
  return false;
}

}  // namespace

template <class T>
void maxpool2d_forward(const T* x, T* y, int64_t* argmax, int64_t NC, int64_t H, int64_t W,
                       int64_t ph, int64_t pw, int64_t stride, int64_t pad, int64_t OH, int64_t OW,
                       bool relu) {
  const int64_t HW = H * W, OHW = OH * OW;
  const bool fast = ph == 2 && pw == 2 && stride == 2 && pad == 0 && HW < (int64_t{1} << 30);
  parallel_for(NC, NC * HW, [&](int64_t b, int64_t e) {
    std::vector<int64_t> scratch(argmax ? 0 : static_cast<size_t>(OHW));  // stays in L1
    for (int64_t i = b; i < e; ++i) {
      int64_t* am = argmax ? argmax + i * OHW : scratch.data();
      bool done = false;  // the ReLU
      if (fast)
        done = forward_2x2<T>(x + i * HW, y + i * OHW, am, H, W, relu);
      else
        forward_plane<T>(x + i * HW, y + i * OHW, am, H, W, ph, pw, stride, pad, OH, OW);
      if (relu && !done) relu_plane<T>(y + i * OHW, am, OHW);
    }
  });
}

template <class T>
bool maxpool2d_backward(const T* dy, const int64_t* argmax, T* dx, int64_t NC, int64_t H,
                        int64_t W, int64_t ph, int64_t pw, int64_t stride, int64_t pad,
                        int64_t OH, int64_t OW, bool relu) {
  const int64_t HW = H * W, OHW = OH * OW;
  bool dense = false;
  if constexpr (sizeof(T) == 4)
    dense = ph == 2 && pw == 2 && stride == 2 && pad == 0 && HW < (int64_t{1} << 30) &&
            cpu_level() == CpuLevel::AVX512;
  std::atomic<bool> ok{true};
  parallel_for(NC, NC * HW, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if constexpr (sizeof(T) == 4) {
        if (dense && maxpool2x2_backward_f32_avx512(dy + i * OHW, argmax + i * OHW, dx + i * HW, H, W, relu))
          continue;
      }
      if (!backward_plane<T>(dy + i * OHW, argmax + i * OHW, dx + i * HW, H, W, OHW, relu))
        ok.store(false, std::memory_order_relaxed);
    }
  });
  return ok.load();
}

template void maxpool2d_forward<float>(const float*, float*, int64_t*, int64_t, int64_t, int64_t,
                                       int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool);
template void maxpool2d_forward<double>(const double*, double*, int64_t*, int64_t, int64_t, int64_t,
                                        int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool);
template bool maxpool2d_backward<float>(const float*, const int64_t*, float*, int64_t, int64_t,
                                        int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool);
template bool maxpool2d_backward<double>(const double*, const int64_t*, double*, int64_t, int64_t,
                                         int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool);

}  // namespace fastdl
