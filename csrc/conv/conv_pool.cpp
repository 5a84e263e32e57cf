// Convolution -> ReLU -> max pool (conv.h), a few samples at a time: each task convolves its
// samples into a buffer that stays in L2 and pools it from there, so the convolution's
// output (5-7 MB for the books' first layers at batch 100) never goes to memory and back.
// The kernels are the unfused ones, called on a chunk (inside a task they run on its thread
// alone: num_threads() is 1 there), so the values are the unfused ones bit for bit.
#include <algorithm>
#include <memory>
#include <vector>

#include "pool/pool.h"
#include "support/alloc.h"
#include "schedule.h"

namespace fastdl {
namespace conv {

namespace {

// The convolution output a chunk may hold (per thread): well inside this CPU's L2.
constexpr int64_t kChunkBytes = 384 << 10;

// Samples per chunk: within kChunkBytes, a whole number of the forward kernel's own sample
// groups (2 for the flat kernels, a register tile's height for the tiles), at least one group.
template <class T>
int64_t chunk_samples(const Geometry& g) {
  const Kernels<T>& K = kernels<T>();
  const int64_t nv = ceil_div(g.FN, K.lanes), taps = g.kh * g.kw;
  const bool flat = use_flat(g.stride, g.FN, g.C * taps, K.lanes,
                             same_direct(K, g.H, g.W, g.OH, g.OW, g.pad, g.kh, g.kw, g.FN));
  const int64_t block = flat ? 2 : K.mmax[vchunk_of(K, nv)];
  const int64_t per = std::max<int64_t>(g.FN * g.OH * g.OW * static_cast<int64_t>(sizeof(T)), 1);
  return std::max<int64_t>(1, kChunkBytes / per / block) * block;
}

}  // namespace

template <class T>
void conv_relu_pool_forward(const Geometry& g, const PoolGeometry& p, const T* x, const T* w, const T* bias,
                            T* y, int64_t* argmax) {
  if (g.N == 0 || g.FN == 0) return;
  const int64_t xs = g.C * g.H * g.W, zs = g.FN * g.OH * g.OW, ys = g.FN * p.OH * p.OW;
  const auto groups = make_groups(g.N, static_cast<int>(chunk_samples<T>(g)), num_threads());
  const int64_t cmax = groups.front().second;  // make_groups: sizes differ by at most one
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), groups.size()));
  Scratch<T> z(cmax * zs, nt);
  const ForwardPlan<T> conv(g, w, bias, false);  // the weights packed once for all chunks
  for_items(static_cast<int64_t>(groups.size()), nt, true, [&](int64_t i, int t) {
    const int64_t n0 = groups[i].first, m = groups[i].second;
    T* zt = z.at(t);
    conv.run(x + n0 * xs, zt, m);
    maxpool2d_forward<T>(zt, y + n0 * ys, argmax + n0 * ys, m * g.FN, g.OH, g.OW, p.ph, p.pw, p.stride, p.pad,
                         p.OH, p.OW, true);
  });
}

namespace {

// dw, db from the pool's gradient and argmax (SparseDwJob): a fixed sample range per thread,
// partial sums reduced here.  False if an argmax entry is outside [-1, OH * OW).
template <class T>
bool sparse_weights(const Geometry& g, const PoolGeometry& p, const T* x, const T* dy, const int64_t* argmax,
                    T* dw, T* db) {
  const int64_t taps = g.kh * g.kw;
  std::fill(dw, dw + g.FN * g.C * taps, T(0));
  std::fill(db, db + g.FN, T(0));
  if (g.N == 0 || g.FN == 0) return true;
  const Kernels<T>& K = kernels<T>();
  SparseDwJob<T> job{};
  job.x = x;
  job.dy = dy;
  job.argmax = argmax;
  job.cin = g.C;
  job.H = g.H;
  job.W = g.W;
  job.FN = g.FN;
  job.P = p.OH * p.OW;
  job.kh = g.kh;
  job.kw = g.kw;
  job.pad = g.pad;
  job.npix = g.OH * g.OW;
  const int64_t Hp = g.H + 2 * g.pad;
  job.Wp = g.W + 2 * g.pad;
  job.nvr = ceil_div(g.kw * g.C, K.lanes);
  // the plane, kh zero rows, and slack for a window row's last whole vector
  job.xlen = (Hp + g.kh) * job.Wp * g.C + job.nvr * K.lanes;
  std::vector<int64_t> off1(static_cast<size_t>(job.npix + 1));
  off1[0] = Hp * job.Wp * g.C;
  for (int64_t oy = 0; oy < g.OH; ++oy)
    for (int64_t ox = 0; ox < g.OW; ++ox) off1[1 + oy * g.OW + ox] = (oy * g.stride * job.Wp + ox * g.stride) * g.C;
  job.off1 = off1.data();
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), g.N));
  const int64_t ld = job.nvr * K.lanes, part = g.FN * g.kh * ld;
  Scratch<T> scratch(sparse_dw_scratch(job), nt);
  std::vector<T> dwp(static_cast<size_t>(part * nt), T(0));
  std::vector<double> dbt(static_cast<size_t>(g.FN * nt), 0.0);
  std::vector<char> ok(static_cast<size_t>(nt), 1);
  // A fixed sample range per thread: the partial sums do not depend on timing.
  for_items(nt, nt, false, [&](int64_t i, int t) {
    ok[t] = K.sparse_dw(job, g.N * i / nt, g.N * (i + 1) / nt, scratch.at(t), dwp.data() + part * t,
                        dbt.data() + g.FN * t);
  });
  if (std::find(ok.begin(), ok.end(), 0) != ok.end()) return false;
  for (int64_t f = 0; f < g.FN; ++f) {
    double s = 0;
    for (int t = 0; t < nt; ++t) s += dbt[g.FN * t + f];
    db[f] = static_cast<T>(s);
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t ky = 0; ky < g.kh; ++ky)
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          T acc = T(0);
          for (int t = 0; t < nt; ++t) acc += dwp[part * t + (f * g.kh + ky) * ld + kx * g.C + c];
          dw[((f * g.C + c) * g.kh + ky) * g.kw + kx] = acc;
        }
  }
  return true;
}

}  // namespace

template <class T>
bool conv_relu_pool_backward(const Geometry& g, const PoolGeometry& p, const T* x, const T* w, const T* dy,
                             const int64_t* argmax, T* dx, T* dw, T* db) {
  // dx: the whole batch's pooled gradient dz, then the convolution's data gradient, as the
  // unfused layers (bit for bit).  From the block cache (support/alloc.h): a fresh 5-7 MB
  // vector would fault in and zero its pages on every step.
  if (dx) {
    struct Free {
      void operator()(T* q) const { cache_free(q); }
    };
    const std::unique_ptr<T, Free> buf(static_cast<T*>(
        cache_alloc(sizeof(T) * static_cast<size_t>(std::max<int64_t>(g.N * g.FN * g.OH * g.OW, 1)))));
    T* dz = buf.get();
    if (!maxpool2d_backward<T>(dy, argmax, dz, g.N * g.FN, g.OH, g.OW, p.ph, p.pw, p.stride, p.pad, p.OH,
                               p.OW, true))
      return false;
    backward_data<T>(g, dz, w, dx);
  }
  // dw, db: only the argmax cells of dz are not zero, so the sums skip the others.
  return sparse_weights<T>(g, p, x, dy, argmax, dw, db);
}

template void conv_relu_pool_forward<float>(const Geometry&, const PoolGeometry&, const float*, const float*,
                                            const float*, float*, int64_t*);
template void conv_relu_pool_forward<double>(const Geometry&, const PoolGeometry&, const double*, const double*,
                                             const double*, double*, int64_t*);
template bool conv_relu_pool_backward<float>(const Geometry&, const PoolGeometry&, const float*, const float*,
                                             const float*, const int64_t*, float*, float*, float*);
template bool conv_relu_pool_backward<double>(const Geometry&, const PoolGeometry&, const double*, const double*,
                                              const double*, const int64_t*, double*, double*, double*);

}  // namespace conv
}  // namespace fastdl
