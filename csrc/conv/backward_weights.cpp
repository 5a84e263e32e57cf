// Convolution weight and bias gradients (conv.h): per-thread partial sums over a fixed
// split of the batch (results that do not depend on timing), reduced here.
#include "schedule.h"

namespace fastdl {
namespace conv {

namespace {

// db[f] = the sum over threads of dbt[nf * t + f] (double partial sums, rounded once).
template <class T>
void sum_db(const std::vector<double>& dbt, int64_t nf, int nt, T* db) {
  for (int64_t f = 0; f < nf; ++f) {
    double s = 0;
    for (int t = 0; t < nt; ++t) s += dbt[nf * t + f];
    db[f] = static_cast<T>(s);
  }
}

// The flat job's two layouts (see FlatDwJob) and its tap offsets.
template <class T>
FlatDwJob<T> flat_dw_job(const Geometry& g, const T* x, const T* dy, const T* gate, int lanes,
                         std::vector<int64_t>& off) {
  FlatDwJob<T> job{x, dy, g.C, g.H, g.W, g.FN, g.OH, g.OW, g.kh, g.kw, g.pad, g.pad,
                   (g.kw - 1) * g.C <= g.FN, 0, 0, 0, 0, 0, nullptr, gate};
  if (job.shifted) {
    // Few input channels (the books' first layers): no copy of dy, whose planes are the
    // larger part.  With many (16 -> 16, 3x3), the kw copies of x are read from L2 by every
    // block of output channels: 5.4 ms shifted against 4.5 padded, float, 1 thread.
    const int64_t P = g.OH * g.OW;
    job.lx = ceil_div((g.OH + g.kh - 1) * g.OW, lanes) * lanes;
    job.ld = P;
    job.nfull = P / lanes;
    job.rem = static_cast<int>(P - job.nfull * lanes);
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t ky = 0; ky < g.kh; ++ky)
        for (int64_t kx = 0; kx < g.kw; ++kx) off.push_back((kx * g.C + c) * job.lx + ky * g.OW);
  } else {
    FlatJob<T> xg{x, g.C * g.H * g.W, g.C, g.H, g.W, g.pad, g.pad, g.kh, g.kw, g.OH, g.OW,
                  0, 0, 0, 0, nullptr, nullptr, 0, nullptr, 0, nullptr, false, nullptr, nullptr, nullptr};
    flat_geometry(xg, off, lanes);
    job.lx = xg.lp;
    job.Wp = xg.Wp;
    job.ld = ceil_div(std::max(xg.nvec * lanes, g.OH * xg.Wp), lanes) * lanes;
    job.nfull = xg.nvec;
  }
  job.off = off.data();
  return job;
}

// Stride 1, pixels in the lanes: a fixed sample range per thread, lanes summed here.
template <class T>
void flat_weights(const Kernels<T>& K, const Geometry& g, const T* x, const T* dy, const T* gate, T* dw,
                  T* db) {
  const int64_t rows = g.kh * g.kw * g.C;
  std::vector<int64_t> off;
  const FlatDwJob<T> job = flat_dw_job(g, x, dy, gate, K.lanes, off);
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), g.N));
  const int64_t per = flat_dw_scratch(job), part = g.FN * rows * K.lanes;
  Scratch<T> scratch(per, nt);
  std::vector<T> dwv(static_cast<size_t>(part * nt), T(0));
  std::vector<double> dbt(static_cast<size_t>(g.FN * nt), 0.0);
  // A fixed sample range per thread: the partial sums do not depend on timing.
  for_items(nt, nt, false, [&](int64_t i, int t) {
    const int64_t n0 = g.N * i / nt, n1 = g.N * (i + 1) / nt;
    K.flat_dw(job, n0, n1, scratch.at(t), dwv.data() + part * t, dbt.data() + g.FN * t);
  });
  sum_db(dbt, g.FN, nt, db);
  for (int64_t k = 0; k < g.FN * rows; ++k) {
    T acc = T(0);
    for (int t = 0; t < nt; ++t)
      for (int l = 0; l < K.lanes; ++l) acc += dwv[part * t + k * K.lanes + l];
    dw[k] = acc;
  }
}

// Channel-lane tiles over groups of samples, any stride.
template <class T>
void tile_weights(const Kernels<T>& K, const Geometry& g, const T* x, const T* dy, const T* gate, T* dw,
                  T* db) {
  const int64_t taps = g.kh * g.kw, rows = taps * g.C;
  const int64_t nv = ceil_div(g.FN, K.lanes), np = nv * K.lanes;
  DwJob<T> job{x, dy, g.C, g.H, g.W, g.FN, g.OH, g.OW, g.kh, g.kw, g.stride, g.pad, np,
               vchunk_of(K, nv), gate};
  // Group size: the packed group (x and dy) in about 256 KiB, at most 16 samples.
  const int64_t per_sample = (g.H * g.W * g.C + g.OH * g.OW * np) * static_cast<int64_t>(sizeof(T));
  const int m = static_cast<int>(std::clamp<int64_t>((256 << 10) / std::max<int64_t>(per_sample, 1), 1, 16));
  auto groups = make_groups(g.N, m, num_threads());
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), groups.size()));
  const int64_t per = dw_scratch(job, m), part = rows * np;
  Scratch<T> scratch(per, nt);
  std::vector<T> dwt(static_cast<size_t>(part * nt), T(0));
  std::vector<double> dbt(static_cast<size_t>(g.FN * nt), 0.0);
  for_items(static_cast<int64_t>(groups.size()), nt, false, [&](int64_t gi, int t) {
    K.dw_group(job, groups[gi].first, groups[gi].second, scratch.at(t),
               dwt.data() + part * t, dbt.data() + g.FN * t);
  });
  sum_db(dbt, g.FN, nt, db);
  for (int64_t f = 0; f < g.FN; ++f) {
    for (int64_t c = 0; c < g.C; ++c) {
      for (int64_t tp = 0; tp < taps; ++tp) {
        T acc = T(0);
        for (int t = 0; t < nt; ++t) acc += dwt[part * t + (tp * g.C + c) * np + f];
        dw[(f * g.C + c) * taps + tp] = acc;
      }
    }
  }
}

}  // namespace

template <class T>
void backward_weights(const Geometry& g, const T* x, const T* dy, T* dw, T* db, const T* gate) {
  std::fill(dw, dw + g.FN * g.kh * g.kw * g.C, T(0));
  std::fill(db, db + g.FN, T(0));
  if (g.N == 0 || g.FN == 0) return;
  const Kernels<T>& K = kernels<T>();
  if (use_flat(g.stride, g.FN, g.kh * g.kw * g.C, K.lanes, false))
    flat_weights(K, g, x, dy, gate, dw, db);
  else
    tile_weights(K, g, x, dy, gate, dw, db);
}

template void backward_weights<float>(const Geometry&, const float*, const float*, float*, float*, const float*);
template void backward_weights<double>(const Geometry&, const double*, const double*, double*, double*,
                                       const double*);

}  // namespace conv
}  // namespace fastdl
