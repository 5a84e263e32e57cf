// Gather convolution tiles (forward and data gradient, TileJob): register tiles of m samples
// by up to VMAX vectors of output channels; results transposed to NCHW with the bias.
// Part of the per-CPU kernel body (kernels.h): included inside an ISA namespace, no includes.

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
  pack_sample_inner<VT>(job.src + n0 * job.src_stride, job.src_stride, m, job.cin, job.qin, A,
                        job.gate ? job.gate + n0 * job.src_stride : nullptr);
  T* obuf = A + job.qin * job.cin * m;
  const int64_t np = job.np, chunk = tile_chunk(m, np, sizeof(T), VT::W);
  const int nv = static_cast<int>(np / VT::W);
  for (int64_t p0 = 0; p0 < job.pout; p0 += chunk) {
    const int64_t p1 = p0 + chunk < job.pout ? p0 + chunk : job.pout;
    for (int v0 = 0; v0 < nv; v0 += job.vchunk) {
      const int vc = nv - v0 < job.vchunk ? nv - v0 : job.vchunk;
      pick_tile_v<VT, 1>(vc, m)(job, A, v0, p0, p1, obuf);
    }
    // obuf (pixel, sample, channel) -> dst (sample, channel, pixel), plus bias, ReLU if set.
    for (int i = 0; i < m; ++i) {
      T* d = job.dst + (n0 + i) * job.dst_stride + p0;
      for (int64_t o0 = 0; o0 < job.nout; o0 += VT::W) {
        const int no = job.nout - o0 < VT::W ? static_cast<int>(job.nout - o0) : VT::W;
        for (int64_t pp = 0; pp < p1 - p0; pp += VT::W) {
          const int npx = p1 - p0 - pp < VT::W ? static_cast<int>(p1 - p0 - pp) : VT::W;
          transpose_block<VT>(obuf + (pp * m + i) * np + o0, m * np, npx, no,
                              d + o0 * job.pout + pp, job.pout, npx,
                              job.bias ? job.bias + o0 : nullptr, job.relu);
        }
      }
    }
  }
}
