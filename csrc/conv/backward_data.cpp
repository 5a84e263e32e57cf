// Convolution data gradient (conv.h): the forward's gather over dy with flipped weights.
#include "schedule.h"

namespace fastdl {
namespace conv {

// dx[c, iy, ix] = sum over fn, ky, kx of dy[fn, oy, ox] * W[fn, c, ky, kx] where
// iy = oy*s - pad + ky: a gather over dy with the taps flipped, so that stride 1 gives
// runs of consecutive dy pixels.
template <class T>
void backward_data(const Geometry& g, const T* dy, const T* w, T* dx, const T* gate) {
  if (g.N == 0 || g.C == 0) return;
  const Kernels<T>& K = kernels<T>();
  const int64_t nv = ceil_div(g.C, K.lanes), cp = nv * K.lanes, taps = g.kh * g.kw;
  if (use_flat(g.stride, g.C, g.FN * taps, K.lanes,
               same_direct(K, g.OH, g.OW, g.H, g.W, g.kh - 1 - g.pad, g.kh, g.kw, g.C))) {
    // A stride-1 convolution of dy with the flipped, transposed kernel and padding kh-1-pad:
    // wt[((fn*kh + fy)*kw + fx) * C + c] = W[fn, c, kh-1-fy, kw-1-fx].
    std::vector<T> wt(static_cast<size_t>(std::max<int64_t>(g.FN * taps * g.C, 1)));
    for (int64_t f = 0; f < g.FN; ++f)
      for (int64_t c = 0; c < g.C; ++c)
        for (int64_t t = 0; t < taps; ++t) wt[((f * taps) + taps - 1 - t) * g.C + c] = w[(f * g.C + c) * taps + t];
    std::vector<int64_t> off;
    FlatJob<T> job{dy, g.FN * g.OH * g.OW, g.FN, g.OH, g.OW, g.kh - 1 - g.pad, g.kw - 1 - g.pad,
                   g.kh, g.kw, g.H, g.W, 0, 0, 0, 0, wt.data(), nullptr, g.C, dx,
                   g.C * g.H * g.W, nullptr, false, gate, nullptr, nullptr};
    flat_geometry(job, off, K.lanes);
    run_flat(K, job, g.N);
    return;
  }
  // B[((fy*kw + fx) * FN + fn) * cp + c] = W[fn, c, kh-1-fy, kw-1-fx], written in order
  AlignedVector<T> B(static_cast<size_t>(std::max<int64_t>(taps * g.FN * cp, 1)));
  T* bp = B.data();
  for (int64_t ft = 0; ft < taps; ++ft)  // ft = fy * kw + fx = taps - 1 - t
    for (int64_t f = 0; f < g.FN; ++f)
      for (int64_t c = 0; c < cp; ++c) *bp++ = c < g.C ? w[(f * g.C + c) * taps + taps - 1 - ft] : T(0);
  Runs runs;
  for (int64_t iy = 0; iy < g.H; ++iy) {
    for (int64_t ix = 0; ix < g.W; ++ix) {
      for (int64_t fy = 0; fy < g.kh; ++fy) {
        const int64_t ny = iy + g.pad - (g.kh - 1 - fy);
        if (ny < 0 || ny % g.stride) continue;
        const int64_t oy = ny / g.stride;
        if (oy >= g.OH) continue;
        for (int64_t fx = 0; fx < g.kw; ++fx) {
          const int64_t nx = ix + g.pad - (g.kw - 1 - fx);
          if (nx < 0 || nx % g.stride) continue;
          const int64_t ox = nx / g.stride;
          if (ox >= g.OW) continue;
          runs.add((oy * g.OW + ox) * g.FN, (fy * g.kw + fx) * g.FN, g.FN);
        }
      }
      runs.end_pixel();
    }
  }
  TileJob<T> job{dy, g.FN * g.OH * g.OW, g.FN, g.OH * g.OW, B.data(), cp, g.C,
                 runs.a.data(), runs.b.data(), runs.len.data(), runs.start.data(), g.H * g.W,
                 dx, g.C * g.H * g.W, nullptr, vchunk_of(K, nv), false, gate};
  run_tiles(K, job, g.N);
}

template void backward_data<float>(const Geometry&, const float*, const float*, float*, const float*);
template void backward_data<double>(const Geometry&, const double*, const double*, double*, const double*);

}  // namespace conv
}  // namespace fastdl
