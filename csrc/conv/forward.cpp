// Convolution forward (conv.h): packs the weights, lists each output pixel's valid taps and
// runs the tile or flat kernels (schedule.h) for the CPU in use.
#include "schedule.h"

namespace fastdl {
namespace conv {

template <class T>
void forward(const Geometry& g, const T* x, const T* w, const T* bias, T* y, bool relu) {
  if (g.N == 0 || g.FN == 0) return;
  const Kernels<T>& K = kernels<T>();
  const int64_t nv = ceil_div(g.FN, K.lanes), np = nv * K.lanes, taps = g.kh * g.kw;
  if (use_flat(g.stride, g.FN, g.C * taps, K.lanes,
               same_direct(K, g.H, g.W, g.OH, g.OW, g.pad, g.kh, g.kw, g.FN))) {
    std::vector<T> wt(static_cast<size_t>(std::max<int64_t>(g.C * taps * g.FN, 1)));
    for (int64_t f = 0; f < g.FN; ++f)
      for (int64_t k = 0; k < g.C * taps; ++k) wt[k * g.FN + f] = w[f * g.C * taps + k];
    std::vector<int64_t> off;
    FlatJob<T> job{x, g.C * g.H * g.W, g.C, g.H, g.W, g.pad, g.pad, g.kh, g.kw, g.OH, g.OW,
                   0, 0, 0, 0, wt.data(), nullptr, g.FN, y, g.FN * g.OH * g.OW, bias, relu, nullptr};
    flat_geometry(job, off, K.lanes);
    run_flat(K, job, g.N);
    return;
  }
  // B[((ky*kw + kx) * C + c) * np + fn] = W[fn, c, ky, kx]
  std::vector<T> B(static_cast<size_t>(std::max<int64_t>(taps * g.C * np, 1)), T(0));
  for (int64_t f = 0; f < g.FN; ++f)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t t = 0; t < taps; ++t) B[(t * g.C + c) * np + f] = w[(f * g.C + c) * taps + t];
  Runs runs;
  for (int64_t oy = 0; oy < g.OH; ++oy) {
    for (int64_t ox = 0; ox < g.OW; ++ox) {
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = oy * g.stride - g.pad + ky;
        if (iy < 0 || iy >= g.H) continue;
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const int64_t ix = ox * g.stride - g.pad + kx;
          if (ix < 0 || ix >= g.W) continue;
          runs.add((iy * g.W + ix) * g.C, (ky * g.kw + kx) * g.C, g.C);
        }
      }
      runs.end_pixel();
    }
  }
  TileJob<T> job{x, g.C * g.H * g.W, g.C, g.H * g.W, B.data(), np, g.FN,
                 runs.a.data(), runs.b.data(), runs.len.data(), runs.start.data(), g.OH * g.OW,
                 y, g.FN * g.OH * g.OW, bias, vchunk_of(K, nv), relu, nullptr};
  run_tiles(K, job, g.N);
}

template void forward<float>(const Geometry&, const float*, const float*, const float*, float*, bool);
template void forward<double>(const Geometry&, const double*, const double*, const double*, double*, bool);

}  // namespace conv
}  // namespace fastdl
