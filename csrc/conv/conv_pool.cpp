// Convolution -> ReLU -> max pool (conv.h), a few samples at a time: each task convolves its
// samples into a buffer that stays in L2 and pools it from there, so the convolution's
// output (5-7 MB for the books' first layers at batch 100) never goes to memory and back.
// The forward's kernels are the unfused ones, called on a chunk (inside a task they run on
// its thread alone: num_threads() is 1 there), so its values are the unfused ones bit for bit.
// The backward has kernels of its own (kernels_sparse.h): the pooled gradient is zero but
// at each window's argmax, and they visit those cells only, so the gradients equal the unfused
// ones to rounding.
#include <algorithm>
#include <limits>
#include <stdexcept>
#include <vector>

#include "pool/pool.h"
#include "schedule.h"
#include "support/cpu.h"

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
  const int64_t nv = ceil_div(g.FN, K.lanes);
  const int64_t block = forward_choice(K, g).flat ? 2 : K.mmax[vchunk_of(K, nv)];
  const int64_t per = std::max<int64_t>(g.FN * g.OH * g.OW * static_cast<int64_t>(sizeof(T)), 1);
  return std::max<int64_t>(1, kChunkBytes / per / block) * block;
}

}  // namespace

// Where the flat kernels run without their direct "same" kernel and the pool is the book's
// (2 x 2, stride 2, no padding) on AVX-512: each sample's sums go from the kernel's own buffer
// to the pool with the bias added as they are loaded (the values conv + bias as its store
// would round them, so bit for bit), and the convolution's output is never stored.
template <class T>
struct PoolSink {
  const T* bias;
  T* y;
  int8_t* cell;
  int64_t FN, OH, OW, Wp, P;

  static void run(const void* ctx, int64_t n, const T* obuf, int64_t ld) {
    const PoolSink& s = *static_cast<const PoolSink*>(ctx);
    for (int64_t o = 0; o < s.FN; ++o) {
      const T b = s.bias ? s.bias[o] : T(0);
      T* yo = s.y + (n * s.FN + o) * s.P;
      int8_t* ao = s.cell + (n * s.FN + o) * s.P;
      if constexpr (sizeof(T) == 4)
        maxpool2x2_bias_relu_f32_avx512(obuf + o * ld, s.Wp, b, yo, ao, s.OH, s.OW);
      else
        maxpool2x2_bias_relu_f64_avx512(obuf + o * ld, s.Wp, b, yo, ao, s.OH, s.OW);
    }
  }
};

template <class T>
bool conv_relu_pool_cells(const Geometry& g, const PoolGeometry& p) {
  if (p.ph != 2 || p.pw != 2 || p.stride != 2 || p.pad != 0 || cpu_level() != CpuLevel::AVX512) return false;
  const ForwardChoice c = forward_choice(kernels<T>(), g);  // ForwardPlan::sinks()
  return c.flat && !c.same;
}

template <class T>
void conv_relu_pool_forward(const Geometry& g, const PoolGeometry& p, const T* x, const T* w, const T* bias,
                            T* y, int64_t* argmax, int8_t* cell) {
  if (g.N == 0 || g.FN == 0) return;
  const int64_t xs = g.C * g.H * g.W, zs = g.FN * g.OH * g.OW, ys = g.FN * p.OH * p.OW;
  const ForwardPlan<T> conv(g, w, bias, false);  // the weights packed once for all chunks
  if (cell) {
    if (!conv.sinks()) throw std::logic_error("conv_relu_pool_forward: cells without the flat kernels' sink");
    const PoolSink<T> sink{bias, y, cell, g.FN, g.OH, g.OW, conv.row_stride(), p.OH * p.OW};
    conv.run_sink(x, g.N, &PoolSink<T>::run, &sink);
    return;
  }
  const auto groups = make_groups(g.N, static_cast<int>(chunk_samples<T>(g)), num_threads());
  const int64_t cmax = groups.front().second;  // make_groups: sizes differ by at most one
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), groups.size()));
  Scratch<T> z(cmax * zs, nt);
  for_items(static_cast<int64_t>(groups.size()), nt, true, [&](int64_t i, int t) {
    const int64_t n0 = groups[i].first, m = groups[i].second;
    T* zt = z.at(t);
    conv.run(x + n0 * xs, zt, m);
    maxpool2d_forward<T>(zt, y + n0 * ys, argmax + n0 * ys, m * g.FN, g.OH, g.OW, p.ph, p.pw, p.stride, p.pad,
                         p.OH, p.OW, true);
  });
}

namespace {

// dx, dw, db from the pool's gradient and argmax (SparseJob): a fixed sample range per
// thread (dx per sample; dw, db partial sums reduced here).  False if an argmax entry is
// outside [-1, OH * OW).
template <class T>
bool sparse_gradients(const Geometry& g, const PoolGeometry& p, const T* x, const T* w, const T* dy,
                      const int64_t* argmax, const int8_t* cell, T* dx, T* dw, T* db) {
  const int64_t taps = g.kh * g.kw;
  std::fill(dw, dw + g.FN * g.C * taps, T(0));
  std::fill(db, db + g.FN, T(0));
  if (g.N == 0 || g.FN == 0) {
    if (dx) std::fill(dx, dx + g.N * g.C * g.H * g.W, T(0));
    return true;
  }
  const Kernels<T>& K = kernels<T>();
  // thin windows (kw * C <= 8, kh <= 8) without dx: two window rows to a vector, where the SIMD
  // level has the kernel
  const bool narrow = !dx && K.sparse_backward_narrow && g.kw * g.C >= 1 && g.kw * g.C <= kSparseNarrowLanes &&
                     g.kh <= kSparsePairRows;
  const int lanes = narrow ? kSparseNarrowLanes : K.lanes;
  SparseJob<T> job{};
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
  job.Wp = g.W + 2 * g.pad;
  job.nvr = ceil_div(g.kw * g.C, lanes);
  job.xlen = (g.H + 2 * g.pad) * job.Wp * g.C + job.nvr * lanes;  // slack: a row's last whole vector
  if (narrow) job.Wq = job.Wp - g.kw + 1;  // the offsets index the pair copy (kernel_table.h)
  // the lists hold int32 offsets into the copy
  if (std::max(job.xlen, sparse_pairs_len(job)) > std::numeric_limits<int32_t>::max())
    throw std::length_error("conv2d_relu_maxpool2d_backward: a sample's padded input has 2^31 elements or more");
  // window (oy, ox) of the convolution's output: its first element in the copy
  const auto window = [&](int64_t oy, int64_t ox) {
    const int64_t y = oy * g.stride, x = ox * g.stride;
    return static_cast<int32_t>(narrow ? sparse_pair_offset(y, x, job.Wq) : (y * job.Wp + x) * g.C);
  };
  // off1[a + 1]: pixel a's window; off1[0], for a = -1 (listed, not counted), any valid one
  std::vector<int32_t> off1(static_cast<size_t>(job.npix + 1), 0);
  for (int64_t oy = 0; oy < g.OH; ++oy)
    for (int64_t ox = 0; ox < g.OW; ++ox) off1[1 + oy * g.OW + ox] = window(oy, ox);
  job.off1 = off1.data();
  std::vector<int32_t> base;
  if (cell) {  // 2 x 2 windows of stride 2 (conv_relu_pool_cells); argmax is nullptr
    job.cell = cell;
    base.resize(static_cast<size_t>(job.P));
    for (int64_t py = 0; py < p.OH; ++py)
      for (int64_t px = 0; px < p.OW; ++px) base[py * p.OW + px] = off1[1 + 2 * py * g.OW + 2 * px];
    job.base = base.data();
    job.cell_off[kCellRight] = window(0, 1);
    job.cell_off[kCellDown] = window(1, 0);
    job.cell_off[kCellDownRight] = window(1, 1);
  }
  const int64_t ld = job.nvr * lanes, part = g.FN * g.kh * ld;
  AlignedVector<T> wr;
  if (dx) {
    wr.assign(static_cast<size_t>(part), T(0));
    for (int64_t f = 0; f < g.FN; ++f)
      for (int64_t c = 0; c < g.C; ++c)
        for (int64_t ky = 0; ky < g.kh; ++ky)
          for (int64_t kx = 0; kx < g.kw; ++kx)
            wr[(f * g.kh + ky) * ld + kx * g.C + c] = w[((f * g.C + c) * g.kh + ky) * g.kw + kx];
    job.wr = wr.data();
    job.dx = dx;
  }
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), g.N));
  Scratch<T> scratch(sparse_layout(job).size, nt);
  std::vector<T> dwp(static_cast<size_t>(part * nt), T(0));
  std::vector<double> dbt(static_cast<size_t>(g.FN * nt), 0.0);
  std::vector<char> ok(static_cast<size_t>(nt), 1);
  // A fixed sample range per thread: the partial sums do not depend on timing.
  for_items(nt, nt, false, [&](int64_t i, int t) {
    ok[t] = (narrow ? K.sparse_backward_narrow : K.sparse_backward)(job, g.N * i / nt, g.N * (i + 1) / nt,
                                                                     scratch.at(t), dwp.data() + part * t,
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
                             const int64_t* argmax, const int8_t* cell, T* dx, T* dw, T* db) {
  // The convolution's output gradient is dy at each window's argmax and zero elsewhere (3
  // cells in 4 for 2 x 2 windows): the sums visit the argmax cells only, and that gradient
  // (5-7 MB for the books' first layers at batch 100) is never written.
  return sparse_gradients<T>(g, p, x, w, dy, argmax, cell, dx, dw, db);
}

template bool conv_relu_pool_cells<float>(const Geometry&, const PoolGeometry&);
template bool conv_relu_pool_cells<double>(const Geometry&, const PoolGeometry&);
template void conv_relu_pool_forward<float>(const Geometry&, const PoolGeometry&, const float*, const float*,
                                            const float*, float*, int64_t*, int8_t*);
template void conv_relu_pool_forward<double>(const Geometry&, const PoolGeometry&, const double*, const double*,
                                             const double*, double*, int64_t*, int8_t*);
template bool conv_relu_pool_backward<float>(const Geometry&, const PoolGeometry&, const float*, const float*,
                                             const float*, const int64_t*, const int8_t*, float*, float*, float*);
template bool conv_relu_pool_backward<double>(const Geometry&, const PoolGeometry&, const double*, const double*,
                                              const double*, const int64_t*, const int8_t*, double*, double*,
                                              double*);

}  // namespace conv
}  // namespace fastdl
