// Convolution gradients from a max pool's argmax (SparseJob), one sample at a time.  The
// sample's input is copied channel-innermost (xs); then, per output channel, its pooled
// outputs that passed the ReLU are listed (window offset, dy) and two register tiles run over
// the list: the weight gradient (R window rows by NB vectors of sums, each a broadcast of dy
// times the window's loads) and the data gradient (the channel's weights held in registers,
// dy times them added to the window of a zeroed copy of dx laid out as xs, which then goes to
// dx).
// Part of the per-CPU kernel body (kernels.h): included inside an ISA namespace, no includes.

// Accumulators a tile may hold: the largest channel-lane tile's, which leaves registers for
// the loads and the broadcast.
template <class VT>
constexpr int sparse_budget() {
  return VT::VMAX * VT::mmax(VT::VMAX);
}
constexpr int kSparseR = 5, kSparseNB = 6;  // the largest tiles instantiated: rows, vectors

// acc[r][b] (at dwp + r * ld + b * W) += sum over j < n of g[j] * xs[off[j] + r * rs + b * W].
template <class VT, int R, int NB>
void sparse_dw_tile(typename VT::T* xs, int64_t rs, const int32_t* off, const typename VT::T* g, int64_t n,
                    typename VT::T* dwp, const typename VT::T*, int64_t ld, int) {
  using T = typename VT::T;
  constexpr int W = VT::W;
  // U accumulator sets over interleaved outputs j: at least 8 independent FMA chains (two
  // FMAs a cycle, four cycles each), which a window of few vectors would not have.
  constexpr int U = R * NB >= 8 ? 1 : R * NB >= 4 ? 2 : 4;
  typename VT::R acc[U][R][NB];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
      acc[0][r][b] = VT::load(dwp + r * ld + b * W);
#pragma GCC unroll 4
      for (int u = 1; u < U; ++u) acc[u][r][b] = VT::zero();
    }
  const auto step = [&](int64_t j, int u) __attribute__((always_inline)) {
    const typename VT::R gv = VT::set1(g[j]);
    const T* p = xs + off[j];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b) acc[u][r][b] = VT::fma(gv, VT::load(p + r * rs + b * W), acc[u][r][b]);
  };
  const int64_t full = n / U * U;
  for (int64_t j = 0; j < full; j += U)
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) step(j + u, u);
  for (int64_t j = full; j < n; ++j) step(j, 0);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
#pragma GCC unroll 4
      for (int u = 1; u < U; ++u) acc[0][r][b] = VT::add(acc[0][r][b], acc[u][r][b]);
      VT::store(dwp + r * ld + b * W, acc[0][r][b]);
    }
}

// For each j < n: dxs[off[j] + r * rs + b * W] += g[j] * wr[r * ld + b * W], the block's last
// vector on its first `last` lanes only (a NaN or inf dy must not reach the next pixels
// through the zero weights past a window row).  Even j, then odd: neighbouring windows
// overlap, and a load of what the last one stored would wait for that store.
template <class VT, int R, int NB>
void sparse_dx_tile(typename VT::T* dxs, int64_t rs, const int32_t* off, const typename VT::T* g, int64_t n,
                    typename VT::T*, const typename VT::T* wr, int64_t ld, int last) {
  using T = typename VT::T;
  constexpr int W = VT::W;
  typename VT::R w[R][NB];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) w[r][b] = VT::load(wr + r * ld + b * W);
  const auto step = [&](int64_t j) __attribute__((always_inline)) {
    const typename VT::R gv = VT::set1(g[j]);
    T* p = dxs + off[j];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b) {
        T* q = p + r * rs + b * W;
        if (b == NB - 1 && last < W)
          VT::store_n(q, VT::fma(gv, w[r][b], VT::load_n(q, last)), last);
        else
          VT::store(q, VT::fma(gv, w[r][b], VT::load(q)));
      }
  };
  for (int64_t j = 0; j < n; j += 2) step(j);
  for (int64_t j = 1; j < n; j += 2) step(j);
}

// Both tiles share a signature: the plane (xs or dxs), its row stride, the list, the block's
// sums (weight gradient) or weights (data gradient) with their row stride, and the lanes of
// the block's last vector.
template <class T>
using SparseFn = void (*)(T*, int64_t, const int32_t*, const T*, int64_t, T*, const T*, int64_t, int);

template <bool B>
struct DxTag {
  static constexpr bool value = B;
};

template <class VT, bool Dx, int R, int NB>
SparseFn<typename VT::T> pick_sparse_nb(int nb) {
  if constexpr (NB == 0) {
    return nullptr;
  } else {
    if (nb == NB) {
      if constexpr (Dx)
        return &sparse_dx_tile<VT, R, NB>;
      else
        return &sparse_dw_tile<VT, R, NB>;
    }
    return pick_sparse_nb<VT, Dx, R, NB - 1>(nb);
  }
}

template <class VT, bool Dx, int R>
SparseFn<typename VT::T> pick_sparse(int r, int nb) {
  if constexpr (R == 0) {
    return nullptr;
  } else {
    if (r == R) return pick_sparse_nb<VT, Dx, R, kSparseNB>(nb);
    return pick_sparse<VT, Dx, R - 1>(r, nb);
  }
}

// xs = sample x (cin, H, W) zero-padded, channel-innermost (see SparseJob); the padding
// and the slack were zeroed by the caller and are never written here.
template <class VT>
void sparse_copy(const SparseJob<typename VT::T>& j, const typename VT::T* x, typename VT::T* xs) {
  using T = typename VT::T;
  constexpr int W = VT::W;
  const int64_t C = j.cin;
  if (C % W == 0) {  // W channels x W pixels at a time, transposed in registers
    for (int64_t c0 = 0; c0 < C; c0 += W)
      for (int64_t iy = 0; iy < j.H; ++iy) {
        T* d = xs + ((iy + j.pad) * j.Wp + j.pad) * C + c0;
        const T* s = x + (c0 * j.H + iy) * j.W;
        for (int64_t ix0 = 0; ix0 < j.W; ix0 += W) {
          const int n = static_cast<int>(j.W - ix0 < W ? j.W - ix0 : W);
          typename VT::R r[W];
#pragma GCC unroll 16
          for (int i = 0; i < W; ++i) r[i] = VT::load_n(s + i * j.H * j.W + ix0, n);
          VT::transpose(r);
          for (int k = 0; k < n; ++k) VT::store(d + (ix0 + k) * C, r[k]);
        }
      }
    return;
  }
  for (int64_t iy = 0; iy < j.H; ++iy) {
    T* d = xs + ((iy + j.pad) * j.Wp + j.pad) * C;
    for (int64_t c = 0; c < C; ++c) {
      const T* s = x + (c * j.H + iy) * j.W;
      for (int64_t ix = 0; ix < j.W; ++ix) d[ix * C + c] = s[ix];
    }
  }
}

// dx (cin, H, W) = the interior of dxs (laid out as sparse_copy writes xs): its inverse.
template <class VT>
void sparse_uncopy(const SparseJob<typename VT::T>& j, const typename VT::T* dxs, typename VT::T* dx) {
  using T = typename VT::T;
  constexpr int W = VT::W;
  const int64_t C = j.cin;
  if (C % W == 0) {  // W pixels x W channels at a time, transposed in registers
    for (int64_t c0 = 0; c0 < C; c0 += W)
      for (int64_t iy = 0; iy < j.H; ++iy) {
        const T* s = dxs + ((iy + j.pad) * j.Wp + j.pad) * C + c0;
        T* d = dx + (c0 * j.H + iy) * j.W;
        for (int64_t ix0 = 0; ix0 < j.W; ix0 += W) {
          const int n = static_cast<int>(j.W - ix0 < W ? j.W - ix0 : W);
          typename VT::R r[W];
#pragma GCC unroll 16
          for (int k = 0; k < W; ++k) r[k] = k < n ? VT::load(s + (ix0 + k) * C) : VT::zero();
          VT::transpose(r);
#pragma GCC unroll 16
          for (int i = 0; i < W; ++i) VT::store_n(d + i * j.H * j.W + ix0, r[i], n);
        }
      }
    return;
  }
  for (int64_t iy = 0; iy < j.H; ++iy) {
    const T* s = dxs + ((iy + j.pad) * j.Wp + j.pad) * C;
    for (int64_t c = 0; c < C; ++c) {
      T* d = dx + (c * j.H + iy) * j.W;
      for (int64_t ix = 0; ix < j.W; ++ix) d[ix] = s[ix * C + c];
    }
  }
}

// v if keep, else +0, without a branch: which pooled outputs the ReLU stopped follows the
// data, so a branch would be mispredicted about as often as taken.
inline float keep_if(float v, bool keep) {
  uint32_t u;
  __builtin_memcpy(&u, &v, sizeof u);
  u &= 0u - static_cast<uint32_t>(keep);
  __builtin_memcpy(&v, &u, sizeof u);
  return v;
}
inline double keep_if(double v, bool keep) {
  uint64_t u;
  __builtin_memcpy(&u, &v, sizeof u);
  u &= uint64_t{0} - static_cast<uint64_t>(keep);
  __builtin_memcpy(&v, &u, sizeof u);
  return v;
}

// The list of one channel's pooled outputs that passed the ReLU (argmax a >= 0): off[k] =
// off1[a + 1], g[k] = dy[i] for the k-th of them; the count is returned.  ok becomes false
// if an entry is outside [-1, npix); sum gets the listed dy (db, in double).  off and g
// have room for kSparseSlack entries past P (kernel_table.h).  This one is for any ISA,
// without branches; kernels_avx512.cpp specialises it.  run_cells: the same from the
// windows' argmax cells c (SparseJob::cell): off[k] = base[i] + cell_off[c], c in [-1, 3].

template <class VT>
struct SparseList {
  static int64_t run(const int64_t* am, const typename VT::T* dy, int64_t P, const int32_t* off1, int64_t npix,
                     int32_t* off, typename VT::T* g, bool& ok, double& sum) {
    return list(dy, P, off, g, ok, sum, [&](int64_t i, bool& in, bool& live) __attribute__((always_inline)) {
      const int64_t a = am[i];
      in = a >= -1 && a < npix;
      live = a >= 0;
      return off1[in ? a + 1 : 0];
    });
  }
  static int64_t run_cells(const int8_t* cm, const typename VT::T* dy, int64_t P, const int32_t* base,
                           const int32_t* cell_off, int32_t* off, typename VT::T* g, bool& ok, double& sum) {
    return list(dy, P, off, g, ok, sum, [&](int64_t i, bool& in, bool& live) __attribute__((always_inline)) {
      const int c = cm[i];
      in = c >= -1 && c <= 3;
      live = c >= 0;
      return base[i] + cell_off[in && live ? c : 0];
    });
  }
  // where(i, in, live): entry i's window offset, and whether it is in range and live
  template <class Where>
  static int64_t list(const typename VT::T* dy, int64_t P, int32_t* off, typename VT::T* g, bool& ok, double& sum,
                      Where where) {
    int64_t cnt = 0;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // four sums: one would be a chain of adds
    const auto add = [&](int64_t i) __attribute__((always_inline)) {
      bool in, live;
      off[cnt] = where(i, in, live);
      ok &= in;
      g[cnt] = dy[i];
      cnt += live;
      return static_cast<double>(keep_if(dy[i], live));
    };
    int64_t i = 0;
    for (; i + 4 <= P; i += 4) {
      s0 += add(i);
      s1 += add(i + 1);
      s2 += add(i + 2);
      s3 += add(i + 3);
    }
    for (; i < P; ++i) s0 += add(i);
    sum += (s0 + s1) + (s2 + s3);
    return cnt;
  }
};

// Sample n's list for output channel f (SparseList, from the job's argmax or its cells) in
// off and g: its length, or -1 if an entry is out of range; db[f] gets the listed dy.
template <class VT>
int64_t sparse_list(const SparseJob<typename VT::T>& job, int64_t n, int64_t f, int32_t* off, typename VT::T* g,
                    double* db) {
  const int64_t at = (n * job.FN + f) * job.P;
  bool ok = true;
  double sum = 0;
  const int64_t cnt =
      job.cell ? SparseList<VT>::run_cells(job.cell + at, job.dy + at, job.P, job.base, job.cell_off, off, g, ok, sum)
               : SparseList<VT>::run(job.argmax + at, job.dy + at, job.P, job.off1, job.npix, off, g, ok, sum);
  if (!ok) return -1;
  db[f] += sum;
  return cnt;
}

template <class VT>
bool sparse_backward(const SparseJob<typename VT::T>& job, int64_t n0, int64_t n1, typename VT::T* scratch,
                     typename VT::T* dwp, double* db) {
  using T = typename VT::T;
  constexpr int W = VT::W;
  const SparseLayout L = sparse_layout(job);
  int32_t* off = reinterpret_cast<int32_t*>(scratch);
  T* g = scratch + L.g;
  T* xs = scratch + L.xs;
  T* dxs = scratch + L.dxs;
  zero_fill<VT>(xs, job.xlen);  // padding and slack: never written below
  const int64_t rs = job.Wp * job.cin, ld = job.nvr * W;
  const int64_t nblk = (job.nvr + kSparseNB - 1) / kSparseNB, nb = nblk ? (job.nvr + nblk - 1) / nblk : 1;
  const int64_t fit = sparse_budget<VT>() / nb > 1 ? sparse_budget<VT>() / nb : 1;
  const int64_t rmax = job.kh < kSparseR ? (job.kh < fit ? job.kh : fit) : (kSparseR < fit ? kSparseR : fit);
  const int tail = static_cast<int>(job.kw * job.cin - (job.nvr - 1) * W);  // lanes of a row's last vector
  // the tiles over one channel's list: weight gradient (sums at dwf) or data gradient (weights wf)
  const auto tiles = [&](auto dx_tag, T* plane, T* dwf, const T* wf, int64_t n) __attribute__((always_inline)) {
    constexpr bool Dx = decltype(dx_tag)::value;
    for (int64_t r0 = 0; r0 < job.kh; r0 += rmax) {
      const int rr = static_cast<int>(job.kh - r0 < rmax ? job.kh - r0 : rmax);
      for (int64_t b0 = 0; b0 < job.nvr; b0 += nb) {
        const int bb = static_cast<int>(job.nvr - b0 < nb ? job.nvr - b0 : nb);
        const int64_t at = r0 * ld + b0 * W;
        pick_sparse<VT, Dx, kSparseR>(rr, bb)(plane + r0 * rs + b0 * W, rs, off, g, n, Dx ? nullptr : dwf + at,
                                               Dx ? wf + at : nullptr, ld, b0 + bb == job.nvr ? tail : W);
      }
    }
  };
  for (int64_t n = n0; n < n1; ++n) {
    sparse_copy<VT>(job, job.x + n * job.cin * job.H * job.W, xs);
    if (job.dx) zero_fill<VT>(dxs, job.xlen);
    for (int64_t f = 0; f < job.FN; ++f) {
      const int64_t cnt = sparse_list<VT>(job, n, f, off, g, db);
      if (cnt < 0) return false;
      tiles(DxTag<false>{}, xs, dwp + f * job.kh * ld, nullptr, cnt);
      if (job.dx) tiles(DxTag<true>{}, dxs, nullptr, job.wr + f * job.kh * ld, cnt);
    }
    if (job.dx) sparse_uncopy<VT>(job, dxs, job.dx + n * job.cin * job.H * job.W);
  }
  return true;
}
