// Weight gradient tiles over groups of samples (DwJob): any stride, valid taps only.
// Part of the per-CPU kernel body (kernels.h): included inside an ISA namespace, no includes.

template <class T>
using DwFn = void (*)(const DwJob<T>&, const T*, const T*, int, int64_t, int64_t, int64_t, int,
                      int64_t, int64_t, int64_t, int64_t, T*);

// dW rows (ky, kx, c0 .. c0+BT-1), fn vectors v0 .. v0+V-1, over output pixels
// [oy0, oy1) x [ox0, ox1) (those whose tap (ky, kx) reads real input) and the group's m
// samples.  X[(q * m + i) * C + c] and D[(p * m + i) * np + fn] are the packed group.
// U independent accumulator sets keep the FMA pipes busy when BT * V is small.
template <class VT, int BT, int V>
void dw_tile(const DwJob<typename VT::T>& job, const typename VT::T* X, const typename VT::T* D,
             int m, int64_t ky, int64_t kx, int64_t c0, int v0, int64_t oy0, int64_t oy1,
             int64_t ox0, int64_t ox1, typename VT::T* out) {
  using T = typename VT::T;
  using R = typename VT::R;
  constexpr int W = VT::W;
  constexpr int budget = VT::mmax(V) * V;
  constexpr int U0 = budget / (BT * V);
  constexpr int U = U0 < 1 ? 1 : (U0 > 8 ? 8 : U0);
  const int64_t C = job.C, np = job.np, s = job.stride, pad = job.pad;
  R acc[U][BT][V];
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 32
    for (int j = 0; j < BT; ++j)
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[u][j][v] = VT::zero();
  for (int64_t oy = oy0; oy < oy1; ++oy) {
    const int64_t iy = oy * s - pad + ky;
    for (int64_t ox = ox0; ox < ox1; ++ox) {
      const int64_t ix = ox * s - pad + kx;
      const T* xr = X + (iy * job.W + ix) * m * C + c0;
      const T* dr = D + (oy * job.OW + ox) * m * np + v0 * W;
      int i = 0;
      for (; i + U <= m; i += U) {
#pragma GCC unroll 8
        for (int u = 0; u < U; ++u) {
          R dv[V];
#pragma GCC unroll 8
          for (int v = 0; v < V; ++v) dv[v] = VT::load(dr + u * np + v * W);
#pragma GCC unroll 32
          for (int j = 0; j < BT; ++j) {
            const R xj = VT::set1(xr[u * C + j]);
#pragma GCC unroll 8
            for (int v = 0; v < V; ++v) acc[u][j][v] = VT::fma(xj, dv[v], acc[u][j][v]);
          }
        }
        xr += U * C;
        dr += U * np;
      }
      for (; i < m; ++i) {
        R dv[V];
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) dv[v] = VT::load(dr + v * W);
#pragma GCC unroll 32
        for (int j = 0; j < BT; ++j) {
          const R xj = VT::set1(xr[j]);
#pragma GCC unroll 8
          for (int v = 0; v < V; ++v) acc[0][j][v] = VT::fma(xj, dv[v], acc[0][j][v]);
        }
        xr += C;
        dr += np;
      }
    }
  }
#pragma GCC unroll 32
  for (int j = 0; j < BT; ++j) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      R sum = acc[0][j][v];
#pragma GCC unroll 8
      for (int u = 1; u < U; ++u) sum = VT::add(sum, acc[u][j][v]);
      T* o = out + j * np + v * W;
      VT::store(o, VT::add(VT::load(o), sum));
    }
  }
}

template <class VT, int V, int BT>
DwFn<typename VT::T> pick_dw_b(int b) {
  if constexpr (BT == 0) {
    return nullptr;
  } else {
    if (b == BT) return &dw_tile<VT, BT, V>;
    return pick_dw_b<VT, V, BT - 1>(b);
  }
}

template <class VT, int V>
DwFn<typename VT::T> pick_dw_v(int v, int b) {
  if constexpr (V > VT::VMAX) {
    return nullptr;
  } else {
    if (v == V) return pick_dw_b<VT, V, VT::mmax(V)>(b);
    return pick_dw_v<VT, V + 1>(v, b);
  }
}

// First output index o >= 0 with o * s - pad + k >= 0, and one past the last with
// o * s - pad + k < n (clamped to [0, out)).
inline void valid_range(int64_t n, int64_t out, int64_t s, int64_t pad, int64_t k, int64_t* lo,
                        int64_t* hi) {
  const int64_t a = pad - k;  // need o * s >= a
  int64_t l = a <= 0 ? 0 : (a + s - 1) / s;
  const int64_t b = n - 1 + pad - k;  // need o * s <= b
  int64_t h = b < 0 ? 0 : b / s + 1;
  if (h > out) h = out;
  if (l > h) l = h;
  *lo = l;
  *hi = h;
}

template <class VT>
void dw_group(const DwJob<typename VT::T>& job, int64_t n0, int m, typename VT::T* scratch,
              typename VT::T* dwt, double* db) {
  using T = typename VT::T;
  const int64_t C = job.C, Q = job.H * job.W, P = job.OH * job.OW, np = job.np;
  T* X = scratch;
  T* D = X + Q * m * C;
  pack_channel_inner<VT>(job.x + n0 * C * Q, C * Q, m, C, Q, C, X);
  pack_channel_inner<VT>(job.dy + n0 * job.FN * P, job.FN * P, m, job.FN, P, np, D,
                         job.gate ? job.gate + n0 * job.FN * P : nullptr);
  for (int64_t q = 0; q < P * m; ++q) {
    const T* d = D + q * np;
    for (int64_t f = 0; f < job.FN; ++f) db[f] += static_cast<double>(d[f]);
  }
  const int nv = static_cast<int>(np / VT::W);
  for (int v0 = 0; v0 < nv; v0 += job.vchunk) {
    const int vc = nv - v0 < job.vchunk ? nv - v0 : job.vchunk;
    // Even blocks of channels: 16 with at most 12 per tile -> 8 + 8, not 12 + 4.
    const int64_t cb = even_block(C, VT::mmax(vc));
    for (int64_t ky = 0; ky < job.kh; ++ky) {
      int64_t oy0, oy1;
      valid_range(job.H, job.OH, job.stride, job.pad, ky, &oy0, &oy1);
      if (oy0 >= oy1) continue;
      for (int64_t kx = 0; kx < job.kw; ++kx) {
        int64_t ox0, ox1;
        valid_range(job.W, job.OW, job.stride, job.pad, kx, &ox0, &ox1);
        if (ox0 >= ox1) continue;
        for (int64_t c0 = 0; c0 < C; c0 += cb) {
          const int b = static_cast<int>(C - c0 < cb ? C - c0 : cb);
          pick_dw_v<VT, 1>(vc, b)(job, X, D, m, ky, kx, c0, v0, oy0, oy1, ox0, ox1,
                                  dwt + ((ky * job.kw + kx) * C + c0) * np + v0 * VT::W);
        }
      }
    }
  }
}
