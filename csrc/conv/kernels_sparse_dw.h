// Weight and data gradients from a max pool's argmax (SparseDwJob).  Weight gradient: per
// sample, the input copied channel-innermost, then per output channel a register tile of R
// window rows by NB vectors summed over the pooled outputs, each a broadcast of dy times the
// window's loads.  Data gradient: per output channel its weights held in registers, and each
// pooled output's dy times them added to its window of a channel-innermost copy of dx.
// Part of the per-CPU kernel body (kernels.h): included inside an ISA namespace, no includes.

// Accumulators a tile may hold: the largest channel-lane tile's, which leaves registers for
// the loads and the broadcast.
template <class VT>
constexpr int sparse_budget() {
  return VT::VMAX * VT::mmax(VT::VMAX);
}
constexpr int kSparseR = 5, kSparseNB = 6;  // the largest tile instantiated: rows, vectors

// v if keep, else +0 (NaN and inf included), without a branch: which pooled outputs the ReLU
// stopped follows the data, so a branch would be mispredicted about as often as taken.
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

template <class T>
using SparseFn = void (*)(const T*, int64_t, const T*, const int64_t*, const int64_t*, int64_t, T*, int64_t);

// acc[r][b] (at dwp + r * ld + b * W) += sum over j < P of g_j * xs[off1[a_j + 1] + r * rs + b * W],
// g_j = dy[j] where a_j = argmax[j] >= 0, else 0 (its window is the zero rows).
template <class VT, int R, int NB>
void sparse_dw_tile(const typename VT::T* xs, int64_t rs, const typename VT::T* dy, const int64_t* argmax,
                    const int64_t* off1, int64_t P, typename VT::T* dwp, int64_t ld) {
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
    const int64_t a = argmax[j];
    const typename VT::R g = VT::set1(keep_if(dy[j], a >= 0));
    const T* p = xs + off1[a + 1];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b) acc[u][r][b] = VT::fma(g, VT::load(p + r * rs + b * W), acc[u][r][b]);
  };
  const int64_t full = P / U * U;
  for (int64_t j = 0; j < full; j += U)
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) step(j + u, u);
  for (int64_t j = full; j < P; ++j) step(j, 0);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
#pragma GCC unroll 4
      for (int u = 1; u < U; ++u) acc[0][r][b] = VT::add(acc[0][r][b], acc[u][r][b]);
      VT::store(dwp + r * ld + b * W, acc[0][r][b]);
    }
}

template <class VT, int R, int NB>
SparseFn<typename VT::T> pick_sparse_nb(int nb) {
  if constexpr (NB == 0) {
    return nullptr;
  } else {
    if (nb == NB) return &sparse_dw_tile<VT, R, NB>;
    return pick_sparse_nb<VT, R, NB - 1>(nb);
  }
}

template <class VT, int R>
SparseFn<typename VT::T> pick_sparse(int r, int nb) {
  if constexpr (R == 0) {
    return nullptr;
  } else {
    if (r == R) return pick_sparse_nb<VT, R, kSparseNB>(nb);
    return pick_sparse<VT, R - 1>(r, nb);
  }
}

// xs = sample x (cin, H, W) zero-padded, channel-innermost (see SparseDwJob); the padding
// and the zero rows below were zeroed by the caller and are never written here.
template <class VT>
void sparse_copy(const SparseDwJob<typename VT::T>& j, const typename VT::T* x, typename VT::T* xs) {
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
    if (C == 1) {
      const T* s = x + iy * j.W;
      for (int64_t ix = 0; ix < j.W; ++ix) d[ix] = s[ix];
      continue;
    }
    for (int64_t c = 0; c < C; ++c) {
      const T* s = x + (c * j.H + iy) * j.W;
      for (int64_t ix = 0; ix < j.W; ++ix) d[ix * C + c] = s[ix];
    }
  }
}

template <class VT>
bool sparse_dw(const SparseDwJob<typename VT::T>& job, int64_t n0, int64_t n1, typename VT::T* scratch,
               typename VT::T* dwp, double* db) {
  using T = typename VT::T;
  constexpr int W = VT::W;
  T* xs = scratch;
  zero_fill<VT>(xs, job.xlen);  // padding, zero rows and slack: never written below
  const int64_t rs = job.Wp * job.cin, ld = job.nvr * W;
  const int64_t nblk = (job.nvr + kSparseNB - 1) / kSparseNB, nb = nblk ? (job.nvr + nblk - 1) / nblk : 1;
  const int64_t fit = sparse_budget<VT>() / nb > 1 ? sparse_budget<VT>() / nb : 1;
  const int64_t rmax = job.kh < kSparseR ? (job.kh < fit ? job.kh : fit) : (kSparseR < fit ? kSparseR : fit);
  for (int64_t n = n0; n < n1; ++n) {
    sparse_copy<VT>(job, job.x + n * job.cin * job.H * job.W, xs);
    for (int64_t f = 0; f < job.FN; ++f) {
      const T* dy = job.dy + (n * job.FN + f) * job.P;
      const int64_t* am = job.argmax + (n * job.FN + f) * job.P;
      // the range check, and db in four interleaved double sums (one would be a chain of adds)
      double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      bool ok = true;
      const auto term = [&](int64_t i) __attribute__((always_inline)) {
        ok &= am[i] >= -1 && am[i] < job.npix;
        return static_cast<double>(keep_if(dy[i], am[i] >= 0));
      };
      int64_t i = 0;
      for (; i + 4 <= job.P; i += 4) {
        s0 += term(i);
        s1 += term(i + 1);
        s2 += term(i + 2);
        s3 += term(i + 3);
      }
      for (; i < job.P; ++i) s0 += term(i);
      if (!ok) return false;
      db[f] += (s0 + s1) + (s2 + s3);
    }
    // a band of pooled rows at a time for every output channel, so that the band's rows of
    // xs stay in L1 (whole planes would go through it FN times)
    for (int64_t j0 = 0; j0 < job.P; j0 += job.band) {
      const int64_t nj = job.P - j0 < job.band ? job.P - j0 : job.band;
      for (int64_t f = 0; f < job.FN; ++f) {
        const int64_t at = (n * job.FN + f) * job.P + j0;
        T* df = dwp + f * job.kh * ld;
        for (int64_t r0 = 0; r0 < job.kh; r0 += rmax) {
          const int rr = static_cast<int>(job.kh - r0 < rmax ? job.kh - r0 : rmax);
          for (int64_t b0 = 0; b0 < job.nvr; b0 += nb) {
            const int bb = static_cast<int>(job.nvr - b0 < nb ? job.nvr - b0 : nb);
            pick_sparse<VT, kSparseR>(rr, bb)(xs + r0 * rs + b0 * W, rs, job.dy + at, job.argmax + at, job.off1, nj,
                                                df + r0 * ld + b0 * W, ld);
          }
        }
      }
    }
  }
  return true;
}

template <class T>
using ScatterFn = void (*)(T*, int64_t, const T*, int64_t, const T*, const int64_t*, const int64_t*, int64_t, int);

// For each j < P: xs[off1[a_j + 1] + r * rs + b * W] += g_j * wr[r * ld + b * W] (g_j as in
// sparse_dw_tile), the block's last vector on its first `last` lanes only: a NaN or inf dy
// must not reach the next pixels through the zero weights past a window row.
template <class VT, int R, int NB>
void sparse_dx_tile(typename VT::T* xs, int64_t rs, const typename VT::T* wr, int64_t ld,
                    const typename VT::T* dy, const int64_t* argmax, const int64_t* off1, int64_t P, int last) {
  using T = typename VT::T;
  constexpr int W = VT::W;
  typename VT::R w[R][NB];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) w[r][b] = VT::load(wr + r * ld + b * W);
  // Even outputs, then odd ones: neighbouring windows overlap, and a load of what the last
  // window stored waits for that store; two apart, 2 x 2 pools' windows of 3 x 3 kernels do
  // not overlap.
  const auto step = [&](int64_t j) __attribute__((always_inline)) {
    const int64_t a = argmax[j];
    const typename VT::R g = VT::set1(keep_if(dy[j], a >= 0));
    T* p = xs + off1[a + 1];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b) {
        T* q = p + r * rs + b * W;
        if (b == NB - 1 && last < W)
          VT::store_n(q, VT::fma(g, w[r][b], VT::load_n(q, last)), last);
        else
          VT::store(q, VT::fma(g, w[r][b], VT::load(q)));
      }
  };
  for (int64_t j = 0; j < P; j += 2) step(j);
  for (int64_t j = 1; j < P; j += 2) step(j);
}

template <class VT, int R, int NB>
ScatterFn<typename VT::T> pick_scatter_nb(int nb) {
  if constexpr (NB == 0) {
    return nullptr;
  } else {
    if (nb == NB) return &sparse_dx_tile<VT, R, NB>;
    return pick_scatter_nb<VT, R, NB - 1>(nb);
  }
}

template <class VT, int R>
ScatterFn<typename VT::T> pick_scatter(int r, int nb) {
  if constexpr (R == 0) {
    return nullptr;
  } else {
    if (r == R) return pick_scatter_nb<VT, R, kSparseNB>(nb);
    return pick_scatter<VT, R - 1>(r, nb);
  }
}

// dx (cin, H, W) = the interior of xs (laid out as sparse_copy writes it): its inverse.
template <class VT>
void sparse_uncopy(const SparseDwJob<typename VT::T>& j, const typename VT::T* xs, typename VT::T* dx) {
  using T = typename VT::T;
  constexpr int W = VT::W;
  const int64_t C = j.cin;
  if (C % W == 0) {  // W pixels x W channels at a time, transposed in registers
    for (int64_t c0 = 0; c0 < C; c0 += W)
      for (int64_t iy = 0; iy < j.H; ++iy) {
        const T* s = xs + ((iy + j.pad) * j.Wp + j.pad) * C + c0;
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
    const T* s = xs + ((iy + j.pad) * j.Wp + j.pad) * C;
    for (int64_t c = 0; c < C; ++c) {
      T* d = dx + (c * j.H + iy) * j.W;
      for (int64_t ix = 0; ix < j.W; ++ix) d[ix] = s[ix * C + c];
    }
  }
}

template <class VT>
void sparse_dx(const SparseDwJob<typename VT::T>& job, int64_t n, typename VT::T* scratch) {
  using T = typename VT::T;
  constexpr int W = VT::W;
  T* xs = scratch;
  zero_fill<VT>(xs, job.xlen);
  const int64_t rs = job.Wp * job.cin, ld = job.nvr * W;
  const int64_t nblk = (job.nvr + kSparseNB - 1) / kSparseNB, nb = nblk ? (job.nvr + nblk - 1) / nblk : 1;
  const int64_t fit = sparse_budget<VT>() / nb > 1 ? sparse_budget<VT>() / nb : 1;
  const int64_t rmax = job.kh < kSparseR ? (job.kh < fit ? job.kh : fit) : (kSparseR < fit ? kSparseR : fit);
  const int tail = static_cast<int>(job.kw * job.cin - (job.nvr - 1) * W);  // lanes of a row's last vector
  for (int64_t j0 = 0; j0 < job.P; j0 += job.band) {  // in bands, as sparse_dw
    const int64_t nj = job.P - j0 < job.band ? job.P - j0 : job.band;
    for (int64_t f = 0; f < job.FN; ++f) {
      const int64_t at = (n * job.FN + f) * job.P + j0;
      const T* wf = job.wr + f * job.kh * ld;
      for (int64_t r0 = 0; r0 < job.kh; r0 += rmax) {
        const int rr = static_cast<int>(job.kh - r0 < rmax ? job.kh - r0 : rmax);
        for (int64_t b0 = 0; b0 < job.nvr; b0 += nb) {
          const int bb = static_cast<int>(job.nvr - b0 < nb ? job.nvr - b0 : nb);
          pick_scatter<VT, kSparseR>(rr, bb)(xs + r0 * rs + b0 * W, rs, wf + r0 * ld + b0 * W, ld, job.dy + at,
                                              job.argmax + at, job.off1, nj, b0 + bb == job.nvr ? tail : W);
        }
      }
    }
  }
  sparse_uncopy<VT>(job, xs, job.dx + n * job.cin * job.H * job.W);
}
