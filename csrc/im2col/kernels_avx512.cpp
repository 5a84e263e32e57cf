// im2col / col2im for one sample with AVX-512 (compiled with AVX-512 flags; called only when
// cpu_level() says so).  im2col: each (c, ky) tap row of a window is one masked load and one
// masked store, padding lanes masked off (read as 0).  col2im: col2im_bands (stride 1, several
// channels), col2im_rows or col2im_wide.  Needs kw <= 16 (float) or kw <= 8 (double).
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "im2col.h"
#include "support/transpose_avx512.h"

namespace fastdl {

namespace {

inline uint32_t bits(int64_t n) { return n <= 0 ? 0u : (n >= 32 ? 0xFFFFFFFFu : (1u << n) - 1u); }

// Lanes [lo, hi) of a kw-wide window row that fall inside the image.
inline uint32_t valid_lanes(int64_t x0, int64_t kw, int64_t W) {
  const int64_t lo = x0 < 0 ? -x0 : 0;
  const int64_t hi = W - x0 < kw ? W - x0 : kw;
  return bits(hi) & ~bits(lo);
}

struct F32 {
  using T = float;
  using V = __m512;
  using M = __mmask16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(M m, const T* p) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(T* p, M m, V v) { _mm512_mask_storeu_ps(p, m, v); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static void transpose(V* r) { avx512::transpose16_ps(r); }
};

struct F64 {
  using T = double;
  using V = __m512d;
  using M = __mmask8;
  static V zero() { return _mm512_setzero_pd(); }
  static V load(M m, const T* p) { return _mm512_maskz_loadu_pd(m, p); }
  static void store(T* p, M m, V v) { _mm512_mask_storeu_pd(p, m, v); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static void transpose(V* r) { avx512::transpose8_pd(r); }
};

template <class S>
void im2col_one(const typename S::T* x, typename S::T* col, const Window& w) {
  using M = typename S::M;
  const int64_t K = w.C * w.kh * w.kw, HW = w.H * w.W;
  const M all = static_cast<M>(bits(w.kw));
  for (int64_t oy = 0; oy < w.OH; ++oy) {
    const int64_t y0 = oy * w.stride - w.pad;
    for (int64_t ox = 0; ox < w.OW; ++ox) {
      const int64_t x0 = ox * w.stride - w.pad;
      const M valid = static_cast<M>(valid_lanes(x0, w.kw, w.W));
      typename S::T* d = col + (oy * w.OW + ox) * K;
      for (int64_t c = 0; c < w.C; ++c) {
        const typename S::T* plane = x + c * HW + x0;
        for (int64_t ky = 0; ky < w.kh; ++ky, d += w.kw) {
          const int64_t iy = y0 + ky;
          const bool inside = iy >= 0 && iy < w.H;
          S::store(d, all, inside ? S::load(valid, plane + iy * w.W) : S::zero());
        }
      }
    }
  }
}

// Rows up to R vectors wide and at most kMaxOW windows per row: each output row (c, iy) is
// summed in registers over every window tap that lands on it, then stored once (no zero
// fill, no read-modify-write).  The lane masks depend on ox only and are computed once.
constexpr int64_t kMaxOW = 256;

template <class S, int R>
void col2im_rows(const typename S::T* col, typename S::T* x, const Window& w) {
  using M = typename S::M;
  using V = typename S::V;
  constexpr int L = static_cast<int>(64 / sizeof(typename S::T));
  const int64_t K = w.C * w.kh * w.kw;
  // Window ox feeds vector v through lanes mask[ox][v], reading col at (ox*K - x0) + v*L.
  M mask[kMaxOW][R];
  int64_t off[kMaxOW];
  for (int64_t ox = 0; ox < w.OW; ++ox) {
    const int64_t x0 = ox * w.stride - w.pad;
    const int64_t lo = x0 < 0 ? 0 : x0, hi = x0 + w.kw < w.W ? x0 + w.kw : w.W;
    off[ox] = ox * K - x0;
    for (int v = 0; v < R; ++v) mask[ox][v] = static_cast<M>(bits(hi - v * L) & ~bits(lo - v * L) & bits(L));
  }
  for (int64_t c = 0; c < w.C; ++c) {
    for (int64_t iy = 0; iy < w.H; ++iy) {
      // Two partial sums (by ox parity) keep the add latency off the critical path.
      V acc0[R], acc1[R];
      for (int v = 0; v < R; ++v) acc0[v] = acc1[v] = S::zero();
      for (int64_t ky = 0; ky < w.kh; ++ky) {
        const int64_t t = iy + w.pad - ky;  // = oy * stride for the window row that reads iy
        if (t < 0 || t % w.stride != 0 || t / w.stride >= w.OH) continue;
        const typename S::T* s = col + (t / w.stride) * w.OW * K + (c * w.kh + ky) * w.kw;
        int64_t ox = 0;
        for (; ox + 2 <= w.OW; ox += 2)
          for (int v = 0; v < R; ++v) {
            acc0[v] = S::add(acc0[v], S::load(mask[ox][v], s + off[ox] + v * L));
            acc1[v] = S::add(acc1[v], S::load(mask[ox + 1][v], s + off[ox + 1] + v * L));
          }
        if (ox < w.OW)
          for (int v = 0; v < R; ++v) acc0[v] = S::add(acc0[v], S::load(mask[ox][v], s + off[ox] + v * L));
      }
      typename S::T* dst = x + (c * w.H + iy) * w.W;
      for (int v = 0; v < R; ++v) S::store(dst + v * L, static_cast<M>(bits(w.W - v * L)), S::add(acc0[v], acc1[v]));
    }
  }
}

// Wider rows: add each window row into memory directly.
template <class S>
void col2im_wide(const typename S::T* col, typename S::T* x, const Window& w) {
  using M = typename S::M;
  const int64_t K = w.C * w.kh * w.kw, HW = w.H * w.W;
  for (int64_t i = 0; i < w.C * HW; ++i) x[i] = 0;
  for (int64_t oy = 0; oy < w.OH; ++oy) {
    const int64_t y0 = oy * w.stride - w.pad;
    const int64_t ky0 = y0 < 0 ? -y0 : 0, ky1 = w.H - y0 < w.kh ? w.H - y0 : w.kh;
    for (int64_t ox = 0; ox < w.OW; ++ox) {
      const int64_t x0 = ox * w.stride - w.pad;
      const M valid = static_cast<M>(valid_lanes(x0, w.kw, w.W));
      const typename S::T* s = col + (oy * w.OW + ox) * K;
      for (int64_t c = 0; c < w.C; ++c) {
        typename S::T* plane = x + c * HW + x0;
        for (int64_t ky = ky0; ky < ky1; ++ky) {
          typename S::T* dst = plane + (y0 + ky) * w.W;
          S::store(dst, valid, S::add(S::load(valid, dst), S::load(valid, s + (c * w.kh + ky) * w.kw)));
        }
      }
    }
  }
}

// Stride 1: col read in its own order, one band of OW windows (one oy) at a time.  The
// band (OW x K) is transposed, L x L at a time, so that tap (c, ky, kx) of every window is
// one row of OW values; that row adds onto image row oy + ky - pad of channel c, shifted by
// kx - pad, in whole vectors.  The sums go into a zeroed copy of the sample with the
// padding around it (nothing to clip; what lands on the padding is dropped at the end).
// Taps are taken kx-major, ky, then c: the next read-modify-write of overlapping cells
// comes C vectors later, after the store has left, instead of waiting on it.
template <class S>
void col2im_bands(const typename S::T* col, typename S::T* x, const Window& w) {
  using T = typename S::T;
  using M = typename S::M;
  constexpr int64_t L = 64 / sizeof(T);
  const int64_t K = w.C * w.kh * w.kw, Hp = w.H + 2 * w.pad, Wp = w.W + 2 * w.pad;
  const int64_t nv = (w.OW + L - 1) / L, tail = w.OW - (nv - 1) * L;
  const M all = static_cast<M>(bits(L)), last = static_cast<M>(bits(tail));
  thread_local std::vector<T> pad_buf, t_buf;
  pad_buf.assign(static_cast<size_t>(w.C * Hp * Wp), T(0));
  if (t_buf.size() < static_cast<size_t>(K * nv * L)) t_buf.resize(static_cast<size_t>(K * nv * L));
  T* pad = pad_buf.data();
  T* tb = t_buf.data();  // tb[k * nv * L + ox]: tap k of window ox of the band
  for (int64_t oy = 0; oy < w.OH; ++oy) {
    const T* band = col + oy * w.OW * K;
    for (int64_t v = 0; v < nv; ++v) {
      const int64_t rows = v + 1 < nv ? L : tail;
      for (int64_t k0 = 0; k0 < K; k0 += L) {
        const M cols = static_cast<M>(bits(K - k0 < L ? K - k0 : L));
        typename S::V r[L];
        for (int64_t i = 0; i < L; ++i)
          r[i] = i < rows ? S::load(cols, band + (v * L + i) * K + k0) : S::zero();
        S::transpose(r);
        const int64_t kn = K - k0 < L ? K - k0 : L;
        for (int64_t i = 0; i < kn; ++i) S::store(tb + (k0 + i) * nv * L + v * L, all, r[i]);
      }
    }
    // Fetch the next band (col is read once, from memory) while this one is summed.  As
    // addresses, not pointers: after the last band they lie past the end of col (a prefetch
    // never faults).
    const uintptr_t band_bytes = static_cast<uintptr_t>(w.OW * K) * sizeof(T);
    uintptr_t pf = reinterpret_cast<uintptr_t>(band) + band_bytes;
    const uintptr_t pf_end = pf + band_bytes, pf_step = 64 * (band_bytes / 64 / K + 1);
    for (int64_t kx = 0; kx < w.kw; ++kx)
      for (int64_t ky = 0; ky < w.kh; ++ky)
        for (int64_t c = 0; c < w.C; ++c) {
          for (const uintptr_t e = pf + pf_step; pf < e && pf < pf_end; pf += 64)
            _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
          T* d = pad + (c * Hp + oy + ky) * Wp + kx;
          const T* s = tb + ((c * w.kh + ky) * w.kw + kx) * nv * L;
          for (int64_t v = 0; v < nv; ++v) {
            const M m = v + 1 < nv ? all : last;
            S::store(d + v * L, m, S::add(S::load(m, d + v * L), S::load(all, s + v * L)));
          }
        }
  }
  for (int64_t c = 0; c < w.C; ++c)
    for (int64_t iy = 0; iy < w.H; ++iy)
      std::memcpy(x + (c * w.H + iy) * w.W, pad + (c * Hp + iy + w.pad) * Wp + w.pad, sizeof(T) * w.W);
  // Keep a thread's buffers for the next sample, unless they are big (large images).
  if ((pad_buf.size() + t_buf.size()) * sizeof(T) > (size_t{1} << 20)) {
    std::vector<T>().swap(pad_buf);
    std::vector<T>().swap(t_buf);
  }
}

template <class S>
void col2im_one(const typename S::T* col, typename S::T* x, const Window& w) {
  constexpr int64_t L = 64 / sizeof(typename S::T);
  // col2im_rows reads the sample's col once per channel: fine for one channel (simple.conv1),
  // 1.5-2.5x slower than the bands from 16 channels on (deep.conv2, deep.conv4).
  if (w.stride == 1 && w.C > 1) col2im_bands<S>(col, x, w);
  else if (w.OW > kMaxOW) col2im_wide<S>(col, x, w);
  else if (w.W <= L) col2im_rows<S, 1>(col, x, w);
  else if (w.W <= 2 * L) col2im_rows<S, 2>(col, x, w);
  else if (w.W <= 4 * L) col2im_rows<S, 4>(col, x, w);
  else col2im_wide<S>(col, x, w);
}

}  // namespace

void im2col_sample_f32_avx512(const float* x, float* col, const Window& w) { im2col_one<F32>(x, col, w); }
void im2col_sample_f64_avx512(const double* x, double* col, const Window& w) { im2col_one<F64>(x, col, w); }
void col2im_sample_f32_avx512(const float* col, float* x, const Window& w) { col2im_one<F32>(col, x, w); }
void col2im_sample_f64_avx512(const double* col, double* x, const Window& w) { col2im_one<F64>(col, x, w); }

}  // namespace fastdl
