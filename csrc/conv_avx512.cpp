// Convolution kernels for AVX-512 (compiled with AVX-512 flags; used when cpu_level() says so).
// 32 vector registers: tiles of up to 16x1, 12x2, 8x3 or 6x4 accumulators.
#include <immintrin.h>

#include <cstdint>

#include "conv_kernels.h"
#include "transpose_avx512.h"

namespace fastdl {
namespace conv {
namespace avx512 {

constexpr int tile_rows(int v) { return v == 1 ? 16 : v == 2 ? 12 : v == 3 ? 8 : 6; }

struct VF {
  using T = float;
  using R = __m512;
  static constexpr int W = 16;
  static constexpr int VMAX = 4;
  static constexpr int FLAT_F = 6, FLAT_V = 4, DW_F = 4, DW_T = 6;
  static constexpr int mmax(int v) { return tile_rows(v); }
  static R zero() { return _mm512_setzero_ps(); }
  static R load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, R r) { _mm512_storeu_ps(p, r); }
  static R set1(T t) { return _mm512_set1_ps(t); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static __mmask16 mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static R load_n(const T* p, int n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store_n(T* p, R r, int n) { _mm512_mask_storeu_ps(p, mask(n), r); }
  // r[k] becomes column k of the 16x16 matrix whose rows are r[0..15].
  __attribute__((always_inline)) static void transpose(R* r) { ::fastdl::avx512::transpose16_ps(r); }
};

struct VD {
  using T = double;
  using R = __m512d;
  static constexpr int W = 8;
  static constexpr int VMAX = 4;
  static constexpr int FLAT_F = 6, FLAT_V = 4, DW_F = 4, DW_T = 6;
  static constexpr int mmax(int v) { return tile_rows(v); }
  static R zero() { return _mm512_setzero_pd(); }
  static R load(const T* p) { return _mm512_loadu_pd(p); }
  static void store(T* p, R r) { _mm512_storeu_pd(p, r); }
  static R set1(T t) { return _mm512_set1_pd(t); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static R add(R a, R b) { return _mm512_add_pd(a, b); }
  static __mmask8 mask(int n) { return static_cast<__mmask8>((1u << n) - 1u); }
  static R load_n(const T* p, int n) { return _mm512_maskz_loadu_pd(mask(n), p); }
  static void store_n(T* p, R r, int n) { _mm512_mask_storeu_pd(p, mask(n), r); }
  // r[k] becomes column k of the 8x8 matrix whose rows are r[0..7].
  __attribute__((always_inline)) static void transpose(R* r) { ::fastdl::avx512::transpose8_pd(r); }
};

#include "conv_impl.h"

// PREFETCHW (all AVX-512 CPUs have it): fetch the line for writing; never faults.
inline void prefetch_write(const float* p) { asm volatile("prefetchw %0" : : "m"(*p)); }

// Direct "same" convolution (stride 1, OH == H, OW == W) for float with at most 16 output
// channels, written straight into dst.  Output plane j of a sample is flat, f = oy * W + ox,
// and is computed in blocks of 16 consecutive pixels (one zmm accumulator per output
// channel), the blocks starting at f = 16 v - s so that the stores are 64-byte aligned when
// the planes are (s = misalignment in floats, or 0).  The input is stored unpadded in width
// with zero rows above and below, so tap (c, ky, kx) of a block is one shifted load, lanes
// whose column ox + kx - pw leaves the image masked to zero (none for kx == pw), and that
// vector feeds F FMAs with the weights broadcast from memory (accumulators start at the
// bias).  The output is far larger than L2, so the stores set the pace: each block
// prefetches its F output lines for writing before its FMAs, which keeps the line
// transfers running underneath the arithmetic.  (Measured and dropped: tiles of 8 channels
// by 3 blocks, fewer loads per FMA but no faster; prefetching a tile or more ahead;
// streaming stores.)
template <int F, int KW>
void same_planes(const FlatJob<float>& job, const float* xb, int64_t P, const __mmask16* masks,
                 int64_t nb, int64_t s, float* d) {
  const int64_t kw = KW > 0 ? KW : job.kw, kh = job.kh, Wd = job.W, cin = job.cin;
  const int64_t HW = job.OH * job.OW, nout = job.nout;
  const float* bias = job.bias;
  const __mmask16* mv = masks;
  for (int64_t f0 = -s; f0 < 16 * nb - s; f0 += 16, mv += kw) {
    float* dv = d + f0;  // plane j of the block at dv + j * hw
    // hw == HW, opaque to the compiler: otherwise it keeps F pointers on the stack and
    // bumps them there every block (F more stores, the resource this kernel is short of).
    int64_t hw = HW;
    asm("" : "+r"(hw));
    // Ask for the block's output lines now: the stores alone would only fetch them when
    // they commit, after the FMAs, and the writes would not overlap the arithmetic.
#pragma GCC unroll 16
    for (int j = 0; j < F; ++j) prefetch_write(dv + j * hw);
    __m512 acc[F];
#pragma GCC unroll 16
    for (int j = 0; j < F; ++j) acc[j] = bias ? _mm512_set1_ps(bias[j]) : _mm512_setzero_ps();
    // Lanes whose column ox + kx - pw is inside the image: all of them for kx == pw, which
    // is 1 when KW == 3 (see pick_same).
    __mmask16 mk[KW > 0 ? KW : 16];
#pragma GCC unroll 16
    for (int kx = 0; kx < kw; ++kx) mk[kx] = mv[kx];
    const float* w = job.wt;
    const float* xc = xb + f0;
    for (int64_t c = 0; c < cin; ++c, xc += P) {
      const float* xr = xc;
#pragma GCC unroll 1
      for (int64_t ky = 0; ky < kh; ++ky, xr += Wd) {
#pragma GCC unroll 16
        for (int kx = 0; kx < kw; ++kx) {
          const __m512 xv = KW == 3 && kx == 1 ? _mm512_loadu_ps(xr + kx)
                                               : _mm512_maskz_loadu_ps(mk[kx], xr + kx);
#pragma GCC unroll 16
          for (int j = 0; j < F; ++j) acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(w[j]), xv, acc[j]);
          w += nout;
        }
      }
    }
    asm("" : "+r"(hw));  // again: recomputed addresses, not F spilled ones
    if (f0 >= 0 && f0 + 16 <= HW) {
#pragma GCC unroll 16
      for (int j = 0; j < F; ++j) _mm512_storeu_ps(dv + j * hw, acc[j]);
    } else {
      // lanes l with 0 <= f0 + l < HW; the store starts at the block's first valid pixel
      const int64_t lo = f0 < 0 ? -f0 : 0, hi = HW - f0 < 16 ? HW - f0 : 16;
      const __mmask16 m = static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
#pragma GCC unroll 16
      for (int j = 0; j < F; ++j) _mm512_mask_storeu_ps(dv + j * hw + lo, m >> lo,
                                                        _mm512_maskz_compress_ps(m, acc[j]));
    }
  }
}

using SameFn = void (*)(const FlatJob<float>&, const float*, int64_t, const __mmask16*, int64_t,
                        int64_t, float*);

// The window width is a constant for 3 (the book's 3x3 layers, pw == 1), so its taps unroll.
template <int F>
SameFn pick_same(int f, const FlatJob<float>& j) {
  if constexpr (F == 0) {
    return nullptr;
  } else {
    if (f == F) return j.kw == 3 && j.pw == 1 ? &same_planes<F, 3> : &same_planes<F, 0>;
    return pick_same<F - 1>(f, j);
  }
}

// Input plane stride of same_planes: the image with ph rows + pw above and the rest of the
// window below, 16 floats of slack either side of the blocks' reach, whole vectors.
int64_t same_plane(const FlatJob<float>& j) {
  return (16 + j.ph * j.W + j.pw + j.H * j.W + (j.kh - 1 - j.ph) * j.W + j.kw + 16 + 15) / 16 * 16;
}

// Whether same_planes handles the job: stride-1 "same" geometry, at most 16 output channels,
// and its buffers fit the flat path's scratch.
bool same_ok(const FlatJob<float>& j) {
  if (!(j.OH == j.H && j.OW == j.W && j.ph >= 0 && j.pw >= 0 && j.ph < j.kh && j.pw < j.kw &&
        j.nout >= 1 && j.nout <= 16 && j.kw <= 16))
    return false;
  const int64_t nb = (j.H * j.W + 15) / 16 + 1;
  const int64_t need = 16 + j.cin * same_plane(j) + (nb * j.kw + 1) / 2 + 1;
  return need <= flat_scratch(j, 16);
}

void flat_conv_f(const FlatJob<float>& job, int64_t n0, int64_t n1, float* scratch) {
  if (!same_ok(job)) {
    flat_conv<VF>(job, n0, n1, scratch);
    return;
  }
  const int64_t Wd = job.W, HW = job.H * Wd, P = same_plane(job);
  const int64_t lead = job.ph * Wd + job.pw;  // image start within a plane
  // Block offset: aligned stores when every output plane has the same alignment.
  int64_t s = 0;
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(job.dst + n0 * job.dst_stride);
  if (a0 % 4 == 0 && HW % 16 == 0 && job.dst_stride % 16 == 0) s = static_cast<int64_t>(a0 % 64 / 4);
  const int64_t nb = (HW + s + 15) / 16;
  // Plane c at xb + c * P, preceded by 16 zeros: blocks reach from -16 to P - 17.
  float* xb = scratch + 16;
  __mmask16* masks = reinterpret_cast<__mmask16*>(scratch + 16 + job.cin * P);
  // Column of each lane's pixel, advanced one block at a time (no divisions).
  alignas(64) int32_t col[16];
  for (int l = 0; l < 16; ++l) col[l] = static_cast<int32_t>(((l - s) % Wd + Wd) % Wd);
  __m512i ox = _mm512_load_si512(col);
  const __m512i wv = _mm512_set1_epi32(static_cast<int32_t>(Wd)), sixteen = _mm512_set1_epi32(16);
  for (int64_t v = 0; v < nb; ++v) {
    for (int64_t kx = 0; kx < job.kw; ++kx) {
      const __m512i ix = _mm512_add_epi32(ox, _mm512_set1_epi32(static_cast<int32_t>(kx - job.pw)));
      masks[v * job.kw + kx] = _mm512_cmpge_epi32_mask(ix, _mm512_setzero_si512()) &
                               _mm512_cmplt_epi32_mask(ix, wv);
    }
    ox = _mm512_add_epi32(ox, sixteen);
    for (__mmask16 m; (m = _mm512_cmpge_epi32_mask(ox, wv)) != 0;) ox = _mm512_mask_sub_epi32(ox, m, ox, wv);
  }
  const SameFn fn = pick_same<16>(static_cast<int>(job.nout), job);
  for (int64_t k = 0; k < 16; ++k) scratch[k] = 0.f;
  for (int64_t n = n0; n < n1; ++n) {
    // xb + c * P + f + ky * W + kx holds input (oy + ky - ph, ox + kx - pw) of pixel f = oy * W + ox.
    for (int64_t c = 0; c < job.cin; ++c) {
      float* p = xb + c * P;
      const float* src = job.src + n * job.src_stride + c * HW;
      for (int64_t k = 0; k < lead; ++k) p[k] = 0.f;
      copy_add<VF>(src, HW, 0.f, p + lead);
      for (int64_t k = lead + HW; k < P; ++k) p[k] = 0.f;
    }
    fn(job, xb, P, masks, nb, s, job.dst + n * job.dst_stride);
  }
}

}  // namespace avx512

void get_kernels_avx512(Kernels<float>* f, Kernels<double>* d) {
  avx512::fill_kernels<avx512::VF>(f);
  f->flat_conv = &avx512::flat_conv_f;  // same_planes where it applies, else the flat tiles
  avx512::fill_kernels<avx512::VD>(d);
}

}  // namespace conv
}  // namespace fastdl
