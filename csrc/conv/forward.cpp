// Convolution forward (conv.h): packs the weights, lists each output pixel's valid taps and
// runs the tile or flat kernels (schedule.h) for the CPU in use.
#include "schedule.h"

namespace fastdl {
namespace conv {

template <class T>
ForwardPlan<T>::ForwardPlan(const Geometry& g, const T* w, const T* bias, bool relu) : K_(kernels<T>()) {
  const int64_t nv = ceil_div(g.FN, K_.lanes), np = nv * K_.lanes, taps = g.kh * g.kw;
  const ForwardChoice choice = forward_choice(K_, g);
  same_ = choice.same;
  flat_ = choice.flat;
  if (flat_) {
    // wt[k * FN + fn] = W[fn, k] for k = (c, ky, kx)
    wt_.assign(static_cast<size_t>(std::max<int64_t>(g.C * taps * g.FN, 1)), T(0));
    for (int64_t f = 0; f < g.FN; ++f)
      for (int64_t k = 0; k < g.C * taps; ++k) wt_[k * g.FN + f] = w[f * g.C * taps + k];
    flat_job_ = FlatJob<T>{nullptr, g.C * g.H * g.W, g.C, g.H, g.W, g.pad, g.pad, g.kh, g.kw, g.OH, g.OW,
                           0, 0, 0, 0, wt_.data(), nullptr, g.FN, nullptr, g.FN * g.OH * g.OW, bias, relu,
                           nullptr, nullptr, nullptr};
    // Shifted copies of the input where they save output vectors (the padded rows' kw - 1
    // extra columns) and cost little to make: few input channels for the output channels
    // (SimpleConvNet's conv: 36 vectors a plane instead of 42; its fused forward at batch 100
    // 0.92 -> 0.84 ms on one core).  Not for the direct "same" kernel, which lays out its own
    // input.
    const bool shifted = !same_ && g.kw > 1 && (g.kw - 1) * g.C <= g.FN &&
                         flat_vectors(g.OH, g.OW, g.kw, K_.lanes, true) <
                             flat_vectors(g.OH, g.OW, g.kw, K_.lanes, false);
    flat_geometry(flat_job_, off_, K_.lanes, shifted);
    return;
  }
  // B[((ky*kw + kx) * C + c) * np + fn] = W[fn, c, ky, kx], written in order (a scattered
  // write order cost 40 us a call for a 64 -> 64 layer, more than its convolution of 6 samples)
  wt_.resize(static_cast<size_t>(std::max<int64_t>(taps * g.C * np, 1)));
  T* bp = wt_.data();
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t f = 0; f < np; ++f) *bp++ = f < g.FN ? w[(f * g.C + c) * taps + t] : T(0);
  for (int64_t oy = 0; oy < g.OH; ++oy) {
    for (int64_t ox = 0; ox < g.OW; ++ox) {
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = oy * g.stride - g.pad + ky;
        if (iy < 0 || iy >= g.H) continue;
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const int64_t ix = ox * g.stride - g.pad + kx;
          if (ix < 0 || ix >= g.W) continue;
          runs_.add((iy * g.W + ix) * g.C, (ky * g.kw + kx) * g.C, g.C);
        }
      }
      runs_.end_pixel();
    }
  }
  tile_job_ = TileJob<T>{nullptr, g.C * g.H * g.W, g.C, g.H * g.W, wt_.data(), np, g.FN,
                         runs_.a.data(), runs_.b.data(), runs_.len.data(), runs_.start.data(), g.OH * g.OW,
                         nullptr, g.FN * g.OH * g.OW, bias, vchunk_of(K_, nv), relu, nullptr};
}

template <class T>
void ForwardPlan<T>::run(const T* x, T* y, int64_t N) const {
  if (flat_) {
    FlatJob<T> job = flat_job_;
    job.src = x;
    job.dst = y;
    run_flat(K_, job, N);
  } else {
    TileJob<T> job = tile_job_;
    job.src = x;
    job.dst = y;
    run_tiles(K_, job, N);
  }
}

template <class T>
void ForwardPlan<T>::run_sink(const T* x, int64_t N, void (*sink)(const void*, int64_t, const T*, int64_t),
                              const void* ctx) const {
  FlatJob<T> job = flat_job_;
  job.src = x;
  job.sink = sink;
  job.sink_ctx = ctx;
  run_flat(K_, job, N);
}

template <class T>
void forward(const Geometry& g, const T* x, const T* w, const T* bias, T* y, bool relu) {
  if (g.N == 0 || g.FN == 0) return;
  ForwardPlan<T>(g, w, bias, relu).run(x, y, g.N);
}

template class ForwardPlan<float>;
template class ForwardPlan<double>;
template void forward<float>(const Geometry&, const float*, const float*, const float*, float*, bool);
template void forward<double>(const Geometry&, const double*, const double*, const double*, double*, bool);

}  // namespace conv
}  // namespace fastdl
