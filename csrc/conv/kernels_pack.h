// Packing and copy helpers of the convolution kernels: register transposes into the
// sample-innermost and channel-innermost layouts, zero-padded planes.
// Part of the per-CPU kernel body (kernels.h): included inside an ISA namespace, no includes.

// Block transpose through registers: out row k (k < nc) at dst + k * ld receives column k
// of the nr x nc block (nr, nc <= W) whose rows start at src + r * ls; only the first
// nstore elements of each out row are written, plus bias[k] if bias is given, through the
// ReLU if relu is set.  With a gate (an array laid out as src: a ReLU's output), each value
// is first multiplied by gate > 0 (VT::gate: the ReLU's backward).
template <class VT>
__attribute__((always_inline)) inline void transpose_block(
    const typename VT::T* src, int64_t ls, int nr, int nc, typename VT::T* dst, int64_t ld,
    int nstore, const typename VT::T* bias, bool relu = false, const typename VT::T* gate = nullptr) {
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
  if (gate) {
    if (nc == W) {
#pragma GCC unroll 16
      for (int r = 0; r < W; ++r)
        if (r < nr) v[r] = VT::gate(v[r], VT::load(gate + r * ls));
    } else {
#pragma GCC unroll 16
      for (int r = 0; r < W; ++r)
        if (r < nr) v[r] = VT::gate(v[r], VT::load_n(gate + r * ls, nc));
    }
  }
  VT::transpose(v);
  if (bias) {
#pragma GCC unroll 16
    for (int k = 0; k < W; ++k)
      if (k < nc) v[k] = VT::add(v[k], VT::set1(bias[k]));
  }
  if (relu) {
#pragma GCC unroll 16
    for (int k = 0; k < W; ++k) v[k] = VT::relu(v[k]);
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
// With a gate (laid out as src), src times gate > 0 (transpose_block).
template <class VT>
void pack_sample_inner(const typename VT::T* src, int64_t S, int m, int64_t cin, int64_t Q,
                       typename VT::T* A, const typename VT::T* gate = nullptr) {
  constexpr int W = VT::W;
  for (int64_t q0 = 0; q0 < Q; q0 += W) {
    const int nq = Q - q0 < W ? static_cast<int>(Q - q0) : W;
    for (int64_t c = 0; c < cin; ++c) {
      for (int i0 = 0; i0 < m; i0 += W) {
        const int ni = m - i0 < W ? m - i0 : W;
        const int64_t o = i0 * S + c * Q + q0;
        transpose_block<VT>(src + o, S, ni, nq, A + (q0 * cin + c) * m + i0, cin * m, ni, nullptr, false,
                            gate ? gate + o : nullptr);
      }
    }
  }
}

// D[(q * m + i) * cp + c] = src[i * S + c * Q + q], zero for cin <= c < cp: channel-innermost.
// With a gate (laid out as src), src times gate > 0 (transpose_block).
template <class VT>
void pack_channel_inner(const typename VT::T* src, int64_t S, int m, int64_t cin, int64_t Q,
                        int64_t cp, typename VT::T* D, const typename VT::T* gate = nullptr) {
  constexpr int W = VT::W;
  for (int i = 0; i < m; ++i) {
    for (int64_t q0 = 0; q0 < Q; q0 += W) {
      const int nq = Q - q0 < W ? static_cast<int>(Q - q0) : W;
      for (int64_t c0 = 0; c0 < cp; c0 += W) {
        const int nc = cin - c0 <= 0 ? 0 : cin - c0 < W ? static_cast<int>(cin - c0) : W;
        const int ns = cp - c0 < W ? static_cast<int>(cp - c0) : W;
        const int64_t o = i * S + c0 * Q + q0;
        transpose_block<VT>(src + o, Q, nc, nq, D + (q0 * m + i) * cp + c0, m * cp, ns, nullptr, false,
                            gate ? gate + o : nullptr);
      }
    }
  }
}

// Block size: the fewest blocks of at most bmax, evenly sized.
inline int64_t even_block(int64_t n, int64_t bmax) {
  if (n <= 0) return bmax;
  const int64_t nb = (n + bmax - 1) / bmax;
  return (n + nb - 1) / nb;
}



// d[0..n) = s[0..n) + b with whole and masked vectors, through the ReLU if relu is set.
template <class VT>
inline void copy_add(const typename VT::T* s, int64_t n, typename VT::T b, typename VT::T* d,
                     bool relu = false) {
  constexpr int W = VT::W;
  const typename VT::R bv = VT::set1(b);
  int64_t k = 0;
  if (relu) {
    for (; k + W <= n; k += W) VT::store(d + k, VT::relu(VT::add(VT::load(s + k), bv)));
  } else {
    for (; k + W <= n; k += W) VT::store(d + k, VT::add(VT::load(s + k), bv));
  }
  if (k < n) {
    const int r = static_cast<int>(n - k);
    const typename VT::R v = VT::add(VT::load_n(s + k, r), bv);
    VT::store_n(d + k, relu ? VT::relu(v) : v, r);
  }
}

// d[0..n) = s[0..n) * (g[0..n) > 0) (VT::gate) with whole and masked vectors.
template <class VT>
inline void copy_gate(const typename VT::T* s, const typename VT::T* g, int64_t n, typename VT::T* d) {
  constexpr int W = VT::W;
  int64_t k = 0;
  for (; k + W <= n; k += W) VT::store(d + k, VT::gate(VT::load(s + k), VT::load(g + k)));
  if (k < n) {
    const int r = static_cast<int>(n - k);
    VT::store_n(d + k, VT::gate(VT::load_n(s + k, r), VT::load_n(g + k, r)), r);
  }
}

// d[0..n) = s[0..n), times (g[0..n) > 0) if a gate g is given: a source copied into a
// kernel's layout.
template <class VT>
inline void copy_src(const typename VT::T* s, const typename VT::T* g, int64_t n, typename VT::T* d) {
  if (g)
    copy_gate<VT>(s, g, n, d);
  else
    copy_add<VT>(s, n, typename VT::T(0), d);
}

// xp[c * lp + yy * Wp + xx] = src[(c * H + yy - ph) * W + xx - pw], zero outside src; with a
// gate (laid out as src), src times gate > 0.
template <class VT>
void pad_planes(const typename VT::T* src, int64_t cin, int64_t H, int64_t W, int64_t ph,
                int64_t pw, int64_t Hp, int64_t Wp, int64_t lp, typename VT::T* xp,
                const typename VT::T* gate = nullptr) {
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
      const int64_t o = (c * H + sy) * W - pw + xa;
      copy_src<VT>(src + o, gate ? gate + o : nullptr, xb - xa, dr + xa);
      for (int64_t k = xb; k < Wp; ++k) dr[k] = T(0);
    }
    for (int64_t k = Hp * Wp; k < lp; ++k) d[k] = T(0);
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

// The kw shifted copies of one sample's planes (FlatJob, FlatDwJob): xs[(kx * cin + c) * lp +
// yy * OW + ox] = src[(c * H + yy - ph) * W + ox + kx - pw] for yy < Hp, zero outside src and
// from Hp * OW to lp; with a gate (laid out as src), src times gate > 0.
template <class VT>
void shifted_planes(const typename VT::T* src, int64_t cin, int64_t H, int64_t W, int64_t ph, int64_t pw,
                    int64_t Hp, int64_t kw, int64_t OW, int64_t lp, typename VT::T* xs,
                    const typename VT::T* gate = nullptr) {
  using T = typename VT::T;
  for (int64_t kx = 0; kx < kw; ++kx) {
    // Columns ox whose input column ox + kx - pw is inside src: [a, b).
    const int64_t sh = kx - pw;
    const int64_t a = sh < 0 ? -sh : 0, b = W - sh < OW ? W - sh : OW;
    for (int64_t c = 0; c < cin; ++c) {
      T* d = xs + (kx * cin + c) * lp;
      int64_t yy = 0;
      if (!gate && a == 0 && b == OW) {
        // Whole rows (no column padding: the book's 5 x 5 on 28 x 28): plain vector copies,
        // the tail masked.
        constexpr int L = VT::W;
        const int tail = static_cast<int>(OW % L);
        for (; yy < Hp; ++yy) {
          const int64_t sy = yy - ph;
          if (sy < 0 || sy >= H) {
            zero_fill<VT>(d + yy * OW, OW);
            continue;
          }
          const T* sr = src + (c * H + sy) * W + sh;
          T* dr = d + yy * OW;
          int64_t k = 0;
          for (; k + L <= OW; k += L) VT::store(dr + k, VT::load(sr + k));
          if (tail) VT::store_n(dr + k, VT::load_n(sr + k, tail), tail);
        }
      }
      for (; yy < Hp; ++yy) {
        T* dr = d + yy * OW;
        const int64_t sy = yy - ph;
        if (sy < 0 || sy >= H || a >= b) {
          zero_fill<VT>(dr, OW);
          continue;
        }
        zero_fill<VT>(dr, a);
        const int64_t o = (c * H + sy) * W + a + sh;
        copy_src<VT>(src + o, gate ? gate + o : nullptr, b - a, dr + a);
        zero_fill<VT>(dr + b, OW - b);
      }
      zero_fill<VT>(d + Hp * OW, lp - Hp * OW);
    }
  }
}
