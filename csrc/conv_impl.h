// Convolution kernels written once over a vector type; included by conv_scalar.cpp,
// conv_avx2.cpp and conv_avx512.cpp inside their own namespace (fastdl::conv::<isa>), so
// every instantiation is a distinct symbol compiled for its ISA only.
//
// The including file defines, before including this header, vector traits VF (float) and
// VD (double) with: T, R (register type), W (lanes), VMAX (most vectors per channel-lane
// tile), mmax(v) (tallest tile for v vectors), FLAT_F x FLAT_V (flat tile: channels x
// vectors), DW_F x DW_T (flat weight-gradient tile: channels x taps), zero(), load(p),
// store(p, r), load_n(p, n) / store_n(p, r, n) (first n lanes), set1(t), fma(a, b, c) =
// a*b + c, add(a, b), transpose(r[W]).  See conv_kernels.h for the data layouts.

// ------------------------------------------------------------------ packing helpers

// Block transpose through registers: out row k (k < nc) at dst + k * ld receives column k
// of the nr x nc block (nr, nc <= W) whose rows start at src + r * ls; only the first
// nstore elements of each out row are written, plus bias[k] if bias is given.
template <class VT>
__attribute__((always_inline)) inline void transpose_block(
    const typename VT::T* src, int64_t ls, int nr, int nc, typename VT::T* dst, int64_t ld,
    int nstore, const typename VT::T* bias) {
  using R = typename VT::R;
  constexpr int W = VT::W;
  R v[W];
  if (nc == W) {
#pragma GCC unroll 16
    for (int r = 0; r < W; ++r) v[r] = r < nr ? VT::load(src + r * ls) : VT::zero();
  } else {
#pragma GCC unroll 16
    for (int r = 0; r < W; ++r) v[r] = r < nr ? VT::load_n(src + r * ls, nc) : VT::zero();
  }
  VT::transpose(v);
  if (bias) {
#pragma GCC unroll 16
    for (int k = 0; k < W; ++k)
      if (k < nc) v[k] = VT::add(v[k], VT::set1(bias[k]));
  }
  if (nstore == W) {
#pragma GCC unroll 16
    for (int k = 0; k < W; ++k)
      if (k < nc) VT::store(dst + k * ld, v[k]);
  } else {
#pragma GCC unroll 16
    for (int k = 0; k < W; ++k)
      if (k < nc) VT::store_n(dst + k * ld, v[k], nstore);
  }
}

// A[(q * cin + c) * m + i] = src[i * S + c * Q + q]: sample-innermost (for broadcasts).
template <class VT>
void pack_sample_inner(const typename VT::T* src, int64_t S, int m, int64_t cin, int64_t Q,
                       typename VT::T* A) {
  constexpr int W = VT::W;
  for (int64_t q0 = 0; q0 < Q; q0 += W) {
    const int nq = Q - q0 < W ? static_cast<int>(Q - q0) : W;
    for (int64_t c = 0; c < cin; ++c) {
      for (int i0 = 0; i0 < m; i0 += W) {
        const int ni = m - i0 < W ? m - i0 : W;
        transpose_block<VT>(src + i0 * S + c * Q + q0, S, ni, nq, A + (q0 * cin + c) * m + i0,
                            cin * m, ni, nullptr);
      }
    }
  }
}

// D[(q * m + i) * cp + c] = src[i * S + c * Q + q], zero for cin <= c < cp: channel-innermost.
template <class VT>
void pack_channel_inner(const typename VT::T* src, int64_t S, int m, int64_t cin, int64_t Q,
                        int64_t cp, typename VT::T* D) {
  constexpr int W = VT::W;
  for (int i = 0; i < m; ++i) {
    for (int64_t q0 = 0; q0 < Q; q0 += W) {
      const int nq = Q - q0 < W ? static_cast<int>(Q - q0) : W;
      for (int64_t c0 = 0; c0 < cp; c0 += W) {
        const int nc = cin - c0 <= 0 ? 0 : cin - c0 < W ? static_cast<int>(cin - c0) : W;
        const int ns = cp - c0 < W ? static_cast<int>(cp - c0) : W;
        transpose_block<VT>(src + i * S + c0 * Q + q0, Q, nc, nq, D + (q0 * m + i) * cp + c0,
                            m * cp, ns, nullptr);
      }
    }
  }
}

// ------------------------------------------------------------------ gather convolution

// Block size: the fewest blocks of at most bmax, evenly sized.
inline int64_t even_block(int64_t n, int64_t bmax) {
  if (n <= 0) return bmax;
  const int64_t nb = (n + bmax - 1) / bmax;
  return (n + nb - 1) / nb;
}


template <class T>
using TileFn = void (*)(const TileJob<T>&, const T*, int, int64_t, int64_t, T*);

// Output pixels p0..p1 of one group of M samples, output vectors v0 .. v0+V-1:
// obuf[((p - p0) * M + i) * np + fn] = sum over the pixel's runs of A * B.
template <class VT, int M, int V>
void tile_range(const TileJob<typename VT::T>& job, const typename VT::T* A, int v0, int64_t p0,
                int64_t p1, typename VT::T* obuf) {
  using T = typename VT::T;
  using R = typename VT::R;
  constexpr int W = VT::W;
  const int64_t ldb = job.np;
  const T* B = job.B + v0 * W;
  for (int64_t p = p0; p < p1; ++p) {
    R acc[M][V];
#pragma GCC unroll 32
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[i][v] = VT::zero();
    for (int64_t r = job.pix_start[p]; r < job.pix_start[p + 1]; ++r) {
      const T* a = A + job.run_a[r] * M;
      const T* b = B + job.run_b[r] * ldb;
      for (int32_t l = job.run_len[r]; l > 0; --l) {
        R bv[V];
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) bv[v] = VT::load(b + v * W);
#pragma GCC unroll 32
        for (int i = 0; i < M; ++i) {
          const R ai = VT::set1(a[i]);
#pragma GCC unroll 8
          for (int v = 0; v < V; ++v) acc[i][v] = VT::fma(ai, bv[v], acc[i][v]);
        }
        a += M;
        b += ldb;
      }
    }
    T* o = obuf + (p - p0) * M * ldb + v0 * W;
#pragma GCC unroll 32
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) VT::store(o + i * ldb + v * W, acc[i][v]);
  }
}

template <class VT, int V, int M>
TileFn<typename VT::T> pick_tile_m(int m) {
  if constexpr (M == 0) {
    return nullptr;
  } else {
    if (m == M) return &tile_range<VT, M, V>;
    return pick_tile_m<VT, V, M - 1>(m);
  }
}

template <class VT, int V>
TileFn<typename VT::T> pick_tile_v(int v, int m) {
  if constexpr (V > VT::VMAX) {
    return nullptr;
  } else {
    if (v == V) return pick_tile_m<VT, V, VT::mmax(V)>(m);
    return pick_tile_v<VT, V + 1>(v, m);
  }
}

template <class VT>
void tile_group(const TileJob<typename VT::T>& job, int64_t n0, int m, typename VT::T* scratch) {
  using T = typename VT::T;
  T* A = scratch;
  pack_sample_inner<VT>(job.src + n0 * job.src_stride, job.src_stride, m, job.cin, job.qin, A);
  T* obuf = A + job.qin * job.cin * m;
  const int64_t np = job.np, chunk = tile_chunk(m, np, sizeof(T), VT::W);
  const int nv = static_cast<int>(np / VT::W);
  for (int64_t p0 = 0; p0 < job.pout; p0 += chunk) {
    const int64_t p1 = p0 + chunk < job.pout ? p0 + chunk : job.pout;
    for (int v0 = 0; v0 < nv; v0 += job.vchunk) {
      const int vc = nv - v0 < job.vchunk ? nv - v0 : job.vchunk;
      pick_tile_v<VT, 1>(vc, m)(job, A, v0, p0, p1, obuf);
    }
    // obuf (pixel, sample, channel) -> dst (sample, channel, pixel), plus bias.
    for (int i = 0; i < m; ++i) {
      T* d = job.dst + (n0 + i) * job.dst_stride + p0;
      for (int64_t o0 = 0; o0 < job.nout; o0 += VT::W) {
        const int no = job.nout - o0 < VT::W ? static_cast<int>(job.nout - o0) : VT::W;
        for (int64_t pp = 0; pp < p1 - p0; pp += VT::W) {
          const int npx = p1 - p0 - pp < VT::W ? static_cast<int>(p1 - p0 - pp) : VT::W;
          transpose_block<VT>(obuf + (pp * m + i) * np + o0, m * np, npx, no,
                              d + o0 * job.pout + pp, job.pout, npx,
                              job.bias ? job.bias + o0 : nullptr);
        }
      }
    }
  }
}

// ------------------------------------------------------------------ weight gradient

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
  pack_channel_inner<VT>(job.dy + n0 * job.FN * P, job.FN * P, m, job.FN, P, np, D);
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

// ------------------------------------------------------------------ flat (pixel-lane) path

// d[0..n) = s[0..n) + b with whole and masked vectors.
template <class VT>
inline void copy_add(const typename VT::T* s, int64_t n, typename VT::T b, typename VT::T* d) {
  constexpr int W = VT::W;
  const typename VT::R bv = VT::set1(b);
  int64_t k = 0;
  for (; k + W <= n; k += W) VT::store(d + k, VT::add(VT::load(s + k), bv));
  if (k < n) {
    const int r = static_cast<int>(n - k);
    VT::store_n(d + k, VT::add(VT::load_n(s + k, r), bv), r);
  }
}

// xp[c * lp + yy * Wp + xx] = src[(c * H + yy - ph) * W + xx - pw], zero outside src.
template <class VT>
void pad_planes(const typename VT::T* src, int64_t cin, int64_t H, int64_t W, int64_t ph,
                int64_t pw, int64_t Hp, int64_t Wp, int64_t lp, typename VT::T* xp) {
  using T = typename VT::T;
  const int64_t x0 = pw > 0 ? pw : 0, x1 = W + pw < Wp ? W + pw : Wp;
  const int64_t xa = x1 > x0 ? x0 : Wp, xb = x1 > x0 ? x1 : Wp;  // copied columns [xa, xb)
  for (int64_t c = 0; c < cin; ++c) {
    T* d = xp + c * lp;
    for (int64_t yy = 0; yy < Hp; ++yy) {
      T* dr = d + yy * Wp;
      const int64_t sy = yy - ph;
      if (sy < 0 || sy >= H || xa == Wp) {
        for (int64_t k = 0; k < Wp; ++k) dr[k] = T(0);
        continue;
      }
      for (int64_t k = 0; k < xa; ++k) dr[k] = T(0);
      copy_add<VT>(src + (c * H + sy) * W - pw + xa, xb - xa, T(0), dr + xa);
      for (int64_t k = xb; k < Wp; ++k) dr[k] = T(0);
    }
    for (int64_t k = Hp * Wp; k < lp; ++k) d[k] = T(0);
  }
}

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
  T* obuf = xp + job.cin * job.lp;
  const int64_t ld = job.nvec * W, fb = even_block(job.nout, VT::FLAT_F);
  for (int64_t n = n0; n < n1; ++n) {
    pad_planes<VT>(job.src + n * job.src_stride, job.cin, job.H, job.W, job.ph, job.pw, job.Hp, job.Wp,
               job.lp, xp);
    for (int64_t v0 = 0; v0 < job.nvec; v0 += VT::FLAT_V) {
      const int vc = static_cast<int>(job.nvec - v0 < VT::FLAT_V ? job.nvec - v0 : VT::FLAT_V);
      for (int64_t f0 = 0; f0 < job.nout; f0 += fb) {
        const int fc = static_cast<int>(job.nout - f0 < fb ? job.nout - f0 : fb);
        pick_flat<VT, VT::FLAT_V>(vc, fc)(job, xp, v0, f0, obuf);
      }
    }
    for (int64_t o = 0; o < job.nout; ++o) {
      const T b = job.bias ? job.bias[o] : T(0);
      T* d = job.dst + n * job.dst_stride + o * job.OH * job.OW;
      const T* sr = obuf + o * ld;
      if (job.Wp == job.OW) {
        copy_add<VT>(sr, job.OH * job.OW, b, d);
      } else {
        for (int64_t oy = 0; oy < job.OH; ++oy) copy_add<VT>(sr + oy * job.Wp, job.OW, b, d + oy * job.OW);
      }
    }
  }
}

template <class T>
using FlatDwFn = void (*)(const FlatDwJob<T>&, const T*, const T*, int64_t, int64_t, T*);

// dwv[((f0 + j) * K + k0 + t) * W + lane] += sum over dy's vectors of dy * xs(tap): dy and
// xs are one sample's planes in either layout of FlatDwJob.
template <class VT, int F, int TT>
void flat_dw_tile(const FlatDwJob<typename VT::T>& job, const typename VT::T* xs,
                  const typename VT::T* dy, int64_t f0, int64_t k0, typename VT::T* dwv) {
  using T = typename VT::T;
  using R = typename VT::R;
  constexpr int W = VT::W;
  R acc[F][TT];
#pragma GCC unroll 8
  for (int j = 0; j < F; ++j)
#pragma GCC unroll 8
    for (int t = 0; t < TT; ++t) acc[j][t] = VT::zero();
  const int64_t P = job.ld, nfull = job.nfull;
  const int rem = job.rem;
  const T* d = dy + f0 * P;
  int64_t off[TT];
#pragma GCC unroll 8
  for (int t = 0; t < TT; ++t) off[t] = job.off[k0 + t];
  for (int64_t v = 0; v < nfull; ++v) {
    R dv[F];
#pragma GCC unroll 8
    for (int j = 0; j < F; ++j) dv[j] = VT::load(d + j * P + v * W);
#pragma GCC unroll 8
    for (int t = 0; t < TT; ++t) {
      const R xv = VT::load(xs + off[t] + v * W);
#pragma GCC unroll 8
      for (int j = 0; j < F; ++j) acc[j][t] = VT::fma(dv[j], xv, acc[j][t]);
    }
  }
  if (rem > 0) {  // both operands masked: no lane past the plane takes part, not even 0 * inf
    R dv[F];
#pragma GCC unroll 8
    for (int j = 0; j < F; ++j) dv[j] = VT::load_n(d + j * P + nfull * W, rem);
#pragma GCC unroll 8
    for (int t = 0; t < TT; ++t) {
      const R xv = VT::load_n(xs + off[t] + nfull * W, rem);
#pragma GCC unroll 8
      for (int j = 0; j < F; ++j) acc[j][t] = VT::fma(dv[j], xv, acc[j][t]);
    }
  }
  const int64_t K = job.cin * job.kh * job.kw;
#pragma GCC unroll 8
  for (int j = 0; j < F; ++j) {
#pragma GCC unroll 8
    for (int t = 0; t < TT; ++t) {
      T* o = dwv + ((f0 + j) * K + k0 + t) * W;
      VT::store(o, VT::add(VT::load(o), acc[j][t]));
    }
  }
}

template <class VT, int F, int TT>
FlatDwFn<typename VT::T> pick_flat_dw_t(int t) {
  if constexpr (TT == 0) {
    return nullptr;
  } else {
    if (t == TT) return &flat_dw_tile<VT, F, TT>;
    return pick_flat_dw_t<VT, F, TT - 1>(t);
  }
}

template <class VT, int F>
FlatDwFn<typename VT::T> pick_flat_dw(int f, int t) {
  if constexpr (F == 0) {
    return nullptr;
  } else {
    if (f == F) return pick_flat_dw_t<VT, F, VT::DW_T>(t);
    return pick_flat_dw<VT, F - 1>(f, t);
  }
}

// d[0..n) = 0 with whole and masked vectors.
template <class VT>
inline void zero_fill(typename VT::T* d, int64_t n) {
  constexpr int W = VT::W;
  int64_t k = 0;
  for (; k + W <= n; k += W) VT::store(d + k, VT::zero());
  if (k < n) VT::store_n(d + k, VT::zero(), static_cast<int>(n - k));
}

// The kw shifted copies of one sample's input (see FlatDwJob).
template <class VT>
void shifted_copies(const FlatDwJob<typename VT::T>& job, const typename VT::T* src, typename VT::T* xs) {
  using T = typename VT::T;
  const int64_t OW = job.OW, Hp = job.OH + job.kh - 1;
  for (int64_t kx = 0; kx < job.kw; ++kx) {
    // Columns ox whose input column ox + kx - pw is inside x: [a, b).
    const int64_t sh = kx - job.pw;
    const int64_t a = sh < 0 ? -sh : 0, b = job.W - sh < OW ? job.W - sh : OW;
    for (int64_t c = 0; c < job.cin; ++c) {
      T* d = xs + (kx * job.cin + c) * job.lx;
      const T* sc = src + c * job.H * job.W;
      for (int64_t yy = 0; yy < Hp; ++yy) {
        T* dr = d + yy * OW;
        const int64_t sy = yy - job.ph;
        if (sy < 0 || sy >= job.H || a >= b) {
          zero_fill<VT>(dr, OW);
          continue;
        }
        zero_fill<VT>(dr, a);
        copy_add<VT>(sc + sy * job.W + a + sh, b - a, T(0), dr + a);
        zero_fill<VT>(dr + b, OW - b);
      }
      zero_fill<VT>(d + Hp * OW, job.lx - Hp * OW);
    }
  }
}

template <class VT>
void flat_dw(const FlatDwJob<typename VT::T>& job, int64_t n0, int64_t n1, typename VT::T* scratch,
             typename VT::T* dwv, double* db) {
  using T = typename VT::T;
  using R = typename VT::R;
  constexpr int W = VT::W;
  const int64_t K = job.cin * job.kh * job.kw, P = job.OH * job.OW;
  const int64_t ld = job.ld, nfull = job.nfull, Hp = job.OH + job.kh - 1;
  const int rem = job.rem;
  const int64_t fb = even_block(job.FN, VT::DW_F), tb = even_block(K, VT::DW_T);
  T* xs = scratch;
  T* dyf = xs + job.cin * job.lx;  // padded layout only
  for (int64_t n = n0; n < n1; ++n) {
    const T* x = job.x + n * job.cin * job.H * job.W;
    const T* dy = job.dy + n * job.FN * P;
    if (job.shifted) {
      shifted_copies<VT>(job, x, xs);
    } else {
      pad_planes<VT>(x, job.cin, job.H, job.W, job.ph, job.pw, Hp, job.Wp, job.lx, xs);
      pad_planes<VT>(dy, job.FN, job.OH, job.OW, 0, 0, job.OH, job.Wp, ld, dyf);
      dy = dyf;
    }
    for (int64_t f = 0; f < job.FN; ++f) {  // db += plane sums (two chains, lanes in double)
      const T* d = dy + f * ld;
      R a0 = VT::zero(), a1 = VT::zero();
      int64_t v = 0;
      for (; v + 2 <= nfull; v += 2) {
        a0 = VT::add(a0, VT::load(d + v * W));
        a1 = VT::add(a1, VT::load(d + v * W + W));
      }
      if (v < nfull) a0 = VT::add(a0, VT::load(d + v * W));
      if (rem > 0) a1 = VT::add(a1, VT::load_n(d + nfull * W, rem));
      T lane[W];
      VT::store(lane, VT::add(a0, a1));
      double sum = 0;
      for (int l = 0; l < W; ++l) sum += static_cast<double>(lane[l]);
      db[f] += sum;
    }
    for (int64_t f0 = 0; f0 < job.FN; f0 += fb) {
      const int fc = static_cast<int>(job.FN - f0 < fb ? job.FN - f0 : fb);
      for (int64_t k0 = 0; k0 < K; k0 += tb) {
        const int tc = static_cast<int>(K - k0 < tb ? K - k0 : tb);
        pick_flat_dw<VT, VT::DW_F>(fc, tc)(job, xs, dy, f0, k0, dwv);
      }
    }
  }
}

template <class VT>
void fill_kernels(Kernels<typename VT::T>* k) {
  k->lanes = VT::W;
  k->vmax = VT::VMAX;
  for (int v = 0; v < 8; ++v) k->mmax[v] = v >= 1 && v <= VT::VMAX ? VT::mmax(v) : 0;
  k->tile_group = &tile_group<VT>;
  k->dw_group = &dw_group<VT>;
  k->flat_conv = &flat_conv<VT>;
  k->flat_dw = &flat_dw<VT>;
  k->same_nout = 0;
}
