// Flat (pixel-lane) weight gradient for stride 1 (FlatDwJob): shifted or padded copies of
// the input, db from the plane sums.
// Part of the per-CPU kernel body (kernels.h): included inside an ISA namespace, no includes.

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
    const T* gate = job.gate ? job.gate + n * job.FN * P : nullptr;
    if (job.shifted) {
      shifted_planes<VT>(x, job.cin, job.H, job.W, job.ph, job.pw, Hp, job.kw, job.OW, job.lx, xs);
      if (gate) {  // dy * (gate > 0) after the kw copies of x, planes as dy's (ld == P)
        T* dyg = xs + job.kw * job.cin * job.lx;
        copy_gate<VT>(dy, gate, job.FN * P, dyg);
        dy = dyg;
      }
    } else {
      pad_planes<VT>(x, job.cin, job.H, job.W, job.ph, job.pw, Hp, job.Wp, job.lx, xs);
      pad_planes<VT>(dy, job.FN, job.OH, job.OW, 0, 0, job.OH, job.Wp, ld, dyf, gate);
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
