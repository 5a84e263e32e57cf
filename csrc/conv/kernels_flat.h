// Flat (pixel-lane) convolution for stride 1 (FlatJob): shifted vector loads of a padded
// plane, F output channels by V vectors of pixels per tile.
// Part of the per-CPU kernel body (kernels.h): included inside an ISA namespace, no includes.

template <class T>
using FlatFn = void (*)(const FlatJob<T>&, const T*, int64_t, int64_t, T*);

// F output channels (from f0) x V vectors of flat outputs (from vector v0) over all taps:
// obuf[(f0 + j) * nvec * W + (v0 + v) * W + lane].
template <class VT, int F, int V>
void flat_tile(const FlatJob<typename VT::T>& job, const typename VT::T* xp, int64_t v0, int64_t f0,
               typename VT::T* obuf) {
  using T = typename VT::T;
  using R = typename VT::R;
  constexpr int W = VT::W;
  R acc[F][V];
#pragma GCC unroll 8
  for (int j = 0; j < F; ++j)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) acc[j][v] = VT::zero();
  const int64_t K = job.cin * job.kh * job.kw, nout = job.nout;
  const T* xb = xp + v0 * W;
  const T* w = job.wt + f0;
  for (int64_t k = 0; k < K; ++k) {
    const T* xk = xb + job.off[k];
    R xv[V];
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) xv[v] = VT::load(xk + v * W);
#pragma GCC unroll 8
    for (int j = 0; j < F; ++j) {
      const R wj = VT::set1(w[j]);
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[j][v] = VT::fma(wj, xv[v], acc[j][v]);
    }
    w += nout;
  }
  const int64_t ld = job.nvec * W;
#pragma GCC unroll 8
  for (int j = 0; j < F; ++j)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) VT::store(obuf + (f0 + j) * ld + (v0 + v) * W, acc[j][v]);
}

template <class VT, int V, int F>
FlatFn<typename VT::T> pick_flat_f(int f) {
  if constexpr (F == 0) {
    return nullptr;
  } else {
    if (f == F) return &flat_tile<VT, F, V>;
    return pick_flat_f<VT, V, F - 1>(f);
  }
}

template <class VT, int V>
FlatFn<typename VT::T> pick_flat(int v, int f) {
  if constexpr (V == 0) {
    return nullptr;
  } else {
    if (v == V) return pick_flat_f<VT, V, VT::FLAT_F>(f);
    return pick_flat<VT, V - 1>(v, f);
  }
}

template <class VT>
void flat_conv(const FlatJob<typename VT::T>& job, int64_t n0, int64_t n1, typename VT::T* scratch) {
  using T = typename VT::T;
  constexpr int W = VT::W;
  T* xp = scratch;
  T* obuf = xp + (job.shifted ? job.kw : 1) * job.cin * job.lp;
  const int64_t ld = job.nvec * W, fb = even_block(job.nout, VT::FLAT_F);
  for (int64_t n = n0; n < n1; ++n) {
    const T* gate = job.gate ? job.gate + n * job.src_stride : nullptr;
    if (job.shifted)
      shifted_planes<VT>(job.src + n * job.src_stride, job.cin, job.H, job.W, job.ph, job.pw, job.Hp, job.kw, job.OW,
                         job.lp, xp, gate);
    else
      pad_planes<VT>(job.src + n * job.src_stride, job.cin, job.H, job.W, job.ph, job.pw, job.Hp, job.Wp, job.lp,
                     xp, gate);
    for (int64_t v0 = 0; v0 < job.nvec; v0 += VT::FLAT_V) {
      const int vc = static_cast<int>(job.nvec - v0 < VT::FLAT_V ? job.nvec - v0 : VT::FLAT_V);
      for (int64_t f0 = 0; f0 < job.nout; f0 += fb) {
        const int fc = static_cast<int>(job.nout - f0 < fb ? job.nout - f0 : fb);
        pick_flat<VT, VT::FLAT_V>(vc, fc)(job, xp, v0, f0, obuf);
      }
    }
    if (job.sink) {
      job.sink(job.sink_ctx, n, obuf, ld);
      continue;
    }
    for (int64_t o = 0; o < job.nout; ++o) {
      const T b = job.bias ? job.bias[o] : T(0);
      T* d = job.dst + n * job.dst_stride + o * job.OH * job.OW;
      const T* sr = obuf + o * ld;
      if (job.Wp == job.OW) {
        copy_add<VT>(sr, job.OH * job.OW, b, d, job.relu);
      } else {
        for (int64_t oy = 0; oy < job.OH; ++oy) copy_add<VT>(sr + oy * job.Wp, job.OW, b, d + oy * job.OW, job.relu);
      }
    }
  }
}
