// Convolution kernels for AVX-512 (compiled with AVX-512 flags; used when cpu_level() says so).
// 32 vector registers: tiles of up to 16x1, 12x2, 8x3 or 6x4 accumulators.
#include <immintrin.h>

#include <cstdint>

#include "kernel_table.h"
#include "support/transpose_avx512.h"

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
  // max(a, 0) gives +0 for -0 (the second operand on a tie) and 0 for NaN, put back by the move.
  static R relu(R a) { return _mm512_mask_mov_ps(_mm512_max_ps(a, zero()), _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), a); }
  // a * (y > 0 ? 1 : 0), as relu_backward multiplies by its mask (NaN * 0 is NaN, -5 * 0 is -0).
  static R gate(R a, R y) { return _mm512_mul_ps(a, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, zero(), _CMP_GT_OQ), set1(1))); }
  static __mmask16 mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static R load_n(const T* p, int n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store_n(T* p, R r, int n) { _mm512_mask_storeu_ps(p, mask(n), r); }
  // For same_planes: lane masks and the column index of each lane's pixel (one int per lane).
  using Mask = __mmask16;
  using Idx = int32_t;
  static R maskz_load(Mask m, const T* p) { return _mm512_maskz_loadu_ps(m, p); }
  static void mask_store(T* p, Mask m, R r) { _mm512_mask_storeu_ps(p, m, r); }
  static R compress(Mask m, R r) { return _mm512_maskz_compress_ps(m, r); }
  static __m512i iset1(Idx v) { return _mm512_set1_epi32(v); }
  static __m512i iadd(__m512i a, __m512i b) { return _mm512_add_epi32(a, b); }
  static Mask ige(__m512i a, __m512i b) { return _mm512_cmpge_epi32_mask(a, b); }
  static Mask ilt(__m512i a, __m512i b) { return _mm512_cmplt_epi32_mask(a, b); }
  static __m512i isub_where(__m512i a, Mask m, __m512i b) { return _mm512_mask_sub_epi32(a, m, a, b); }
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
  static R relu(R a) { return _mm512_mask_mov_pd(_mm512_max_pd(a, zero()), _mm512_cmp_pd_mask(a, a, _CMP_UNORD_Q), a); }
  static R gate(R a, R y) { return _mm512_mul_pd(a, _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(y, zero(), _CMP_GT_OQ), set1(1))); }
  static __mmask8 mask(int n) { return static_cast<__mmask8>((1u << n) - 1u); }
  static R load_n(const T* p, int n) { return _mm512_maskz_loadu_pd(mask(n), p); }
  static void store_n(T* p, R r, int n) { _mm512_mask_storeu_pd(p, mask(n), r); }
  using Mask = __mmask8;
  using Idx = int64_t;
  static R maskz_load(Mask m, const T* p) { return _mm512_maskz_loadu_pd(m, p); }
  static void mask_store(T* p, Mask m, R r) { _mm512_mask_storeu_pd(p, m, r); }
  static R compress(Mask m, R r) { return _mm512_maskz_compress_pd(m, r); }
  static __m512i iset1(Idx v) { return _mm512_set1_epi64(v); }
  static __m512i iadd(__m512i a, __m512i b) { return _mm512_add_epi64(a, b); }
  static Mask ige(__m512i a, __m512i b) { return _mm512_cmpge_epi64_mask(a, b); }
  static Mask ilt(__m512i a, __m512i b) { return _mm512_cmplt_epi64_mask(a, b); }
  static __m512i isub_where(__m512i a, Mask m, __m512i b) { return _mm512_mask_sub_epi64(a, m, a, b); }
  // r[k] becomes column k of the 8x8 matrix whose rows are r[0..7].
  __attribute__((always_inline)) static void transpose(R* r) { ::fastdl::avx512::transpose8_pd(r); }
};

#include "kernels.h"

// SparseList (kernels_sparse.h) sixteen entries at a time: the live lanes' window offsets
// (gathered from off1, or a cell's offset added to the window's base) and their dy
// compressed and stored as whole vectors (the lists have slack for them); db in 16 float
// lanes (P / 16 terms each; double from there on), or for double in two vectors of 8 lanes.
template <class VT>
struct SparseList16 {
  using T = typename VT::T;
  static int64_t run(const int64_t* am, const T* dy, int64_t P, const int32_t* off1, int64_t npix, int32_t* off,
                     T* g, bool& ok, double& sum) {
    const __m512i minus1 = _mm512_set1_epi64(-1), top = _mm512_set1_epi64(npix);
    return list(dy, P, off, g, ok, sum, [&](int64_t i, __mmask16 m, __mmask16& in, __mmask16& live) {
      const __m512i a0 = _mm512_maskz_loadu_epi64(static_cast<__mmask8>(m), am + i);
      const __m512i a1 = _mm512_maskz_loadu_epi64(static_cast<__mmask8>(m >> 8), am + i + 8);
      const __mmask8 in0 = _mm512_mask_cmpge_epi64_mask(static_cast<__mmask8>(m), a0, minus1) &
                           _mm512_cmplt_epi64_mask(a0, top);
      const __mmask8 in1 = _mm512_mask_cmpge_epi64_mask(static_cast<__mmask8>(m >> 8), a1, minus1) &
                           _mm512_cmplt_epi64_mask(a1, top);
      const __mmask8 l0 = _mm512_mask_cmpge_epi64_mask(in0, a0, _mm512_setzero_si512());
      const __mmask8 l1 = _mm512_mask_cmpge_epi64_mask(in1, a1, _mm512_setzero_si512());
      in = static_cast<__mmask16>(in0 | (in1 << 8));
      live = static_cast<__mmask16>(l0 | (l1 << 8));
      // in range, so the int32 truncation is exact where it is used
      const __m512i a = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(a0)),
                                           _mm512_cvtepi64_epi32(a1), 1);
      return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, _mm512_add_epi32(a, _mm512_set1_epi32(1)),
                                         off1, 4);
    });
  }
  static int64_t run_cells(const int8_t* cm, const T* dy, int64_t P, const int32_t* base, const int32_t* cell_off,
                           int32_t* off, T* g, bool& ok, double& sum) {
    const __m512i minus1 = _mm512_set1_epi32(-1), three = _mm512_set1_epi32(3);
    const __m512i table = _mm512_loadu_si512(cell_off);  // [0, 4) used
    return list(dy, P, off, g, ok, sum, [&](int64_t i, __mmask16 m, __mmask16& in, __mmask16& live) {
      const __m512i c = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, cm + i));
      in = _mm512_mask_cmpge_epi32_mask(m, c, minus1) & _mm512_cmple_epi32_mask(c, three);
      live = _mm512_mask_cmpge_epi32_mask(in, c, _mm512_setzero_si512());
      return _mm512_add_epi32(_mm512_maskz_loadu_epi32(live, base + i), _mm512_permutexvar_epi32(c, table));
    });
  }
  // where(i, m, in, live): the 16 entries from i (lanes m) -> their offsets, in range, live
  template <class Where>
  static int64_t list(const T* dy, int64_t P, int32_t* off, T* g, bool& ok, double& sum, Where where) {
    __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
    __m512 accf = _mm512_setzero_ps();
    __mmask16 bad = 0;
    int64_t cnt = 0;
    for (int64_t i = 0; i < P; i += 16) {
      const __mmask16 m = P - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (P - i)) - 1u);
      __mmask16 in, live;
      const __m512i o = where(i, m, in, live);
      bad |= static_cast<__mmask16>(m & ~in);
      _mm512_storeu_si512(off + cnt, _mm512_maskz_compress_epi32(live, o));
      if constexpr (sizeof(T) == 4) {
        const __m512 v = _mm512_maskz_loadu_ps(m, dy + i);
        _mm512_storeu_ps(g + cnt, _mm512_maskz_compress_ps(live, v));
        accf = _mm512_mask_add_ps(accf, live, accf, v);
      } else {
        const __mmask8 l0 = static_cast<__mmask8>(live), l1 = static_cast<__mmask8>(live >> 8);
        const __m512d d0 = _mm512_maskz_loadu_pd(static_cast<__mmask8>(m), dy + i);
        const __m512d d1 = _mm512_maskz_loadu_pd(static_cast<__mmask8>(m >> 8), dy + i + 8);
        _mm512_storeu_pd(g + cnt, _mm512_maskz_compress_pd(l0, d0));
        _mm512_storeu_pd(g + cnt + __builtin_popcount(static_cast<unsigned>(l0)), _mm512_maskz_compress_pd(l1, d1));
        acc0 = _mm512_mask_add_pd(acc0, l0, acc0, d0);
        acc1 = _mm512_mask_add_pd(acc1, l1, acc1, d1);
      }
      cnt += __builtin_popcount(static_cast<unsigned>(live));
    }
    ok = ok && bad == 0;
    if constexpr (sizeof(T) == 4) {
      acc0 = _mm512_cvtps_pd(_mm512_castps512_ps256(accf));
      acc1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(accf), 1)));
    }
    sum += _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
    return cnt;
  }
};
template <>
struct SparseList<VF> : SparseList16<VF> {};
template <>
struct SparseList<VD> : SparseList16<VD> {};

// sparse_backward_narrow's tile: dwf's rows (8 floats apart, kh of them) += the sum over the
// list of g[j] times window j's rows, two rows to a 16-float aligned load of the pair copy
// (pairs ps floats apart).  U accumulator sets over interleaved windows for 8+ FMA chains.
template <int NP>
void pair_dw_tile(const float* xp, int64_t ps, const int32_t* off, const float* g, int64_t n, float* dwf,
                  int64_t kh) {
  constexpr int U = NP >= 4 ? 2 : NP >= 2 ? 4 : 8;
  __m512 acc[U][NP];
  for (int u = 0; u < U; ++u)
    for (int q = 0; q < NP; ++q) acc[u][q] = _mm512_setzero_ps();
  const auto step = [&](int64_t j, int u) __attribute__((always_inline)) {
    const __m512 gv = _mm512_set1_ps(g[j]);
    const float* p = xp + off[j];
    for (int q = 0; q < NP; ++q) acc[u][q] = _mm512_fmadd_ps(gv, _mm512_load_ps(p + q * ps), acc[u][q]);
  };
  const int64_t full = n / U * U;
  for (int64_t j = 0; j < full; j += U)
    for (int u = 0; u < U; ++u) step(j + u, u);
  for (int64_t j = full; j < n; ++j) step(j, 0);
  for (int q = 0; q < NP; ++q) {
    for (int u = 1; u < U; ++u) acc[0][q] = _mm512_add_ps(acc[0][q], acc[u][q]);
    float* lo = dwf + 2 * q * kSparseNarrowLanes;
    _mm256_storeu_ps(lo, _mm256_add_ps(_mm256_loadu_ps(lo), _mm512_castps512_ps256(acc[0][q])));
    if (2 * q + 1 < kh) {
      float* hi = lo + kSparseNarrowLanes;
      _mm256_storeu_ps(hi, _mm256_add_ps(_mm256_loadu_ps(hi), _mm512_extractf32x8_ps(acc[0][q], 1)));
    }
  }
}

using PairFn = void (*)(const float*, int64_t, const int32_t*, const float*, int64_t, float*, int64_t);

// sparse_backward's weight gradient for windows whose rows fit 8 floats (Kernels::
// sparse_backward_narrow): the sample copied channel-innermost (xs), then into the pair copy,
// then per output channel the list and pair_dw_tile.  A 5 x 5 window takes 3 aligned loads
// and FMAs instead of 5 loads that cross a cache line 7 times in 16.
bool sparse_backward_pairs(const SparseJob<float>& job, int64_t n0, int64_t n1, float* scratch, float* dwp,
                           double* db) {
  static const PairFn tiles[kSparsePairRows / 2] = {&pair_dw_tile<1>, &pair_dw_tile<2>, &pair_dw_tile<3>,
                                                    &pair_dw_tile<4>};
  const SparseLayout L = sparse_layout(job);
  int32_t* off = reinterpret_cast<int32_t*>(scratch);
  float* g = scratch + L.g;
  float* xs = scratch + L.xs;
  float* xp = scratch + L.pairs;
  zero_fill<VF>(xs, job.xlen);  // padding and slack: never written below
  const int64_t Hp = job.H + 2 * job.pad, rs = job.Wp * job.cin, ld = kSparseNarrowLanes;
  const int64_t ps = sparse_pair_offset(2, 0, job.Wq);
  const PairFn tile = tiles[(job.kh + 1) / 2 - 1];
  for (int64_t n = n0; n < n1; ++n) {
    sparse_copy<VF>(job, job.x + n * job.cin * job.H * job.W, xs);
    for (int64_t y = 0; y < Hp; ++y)
      for (int64_t x = 0; x < job.Wq; ++x) {
        const float* s = xs + y * rs + x * job.cin;
        const __m256 lo = _mm256_loadu_ps(s);
        const __m256 hi = y + 1 < Hp ? _mm256_loadu_ps(s + rs) : _mm256_setzero_ps();
        _mm512_store_ps(xp + sparse_pair_offset(y, x, job.Wq), _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1));
      }
    for (int64_t f = 0; f < job.FN; ++f) {
      const int64_t cnt = sparse_list<VF>(job, n, f, off, g, db);
      if (cnt < 0) return false;
      tile(xp, ps, off, g, cnt, dwp + f * job.kh * ld, job.kh);
    }
  }
  return true;
}

// PREFETCHW (all AVX-512 CPUs have it): fetch the line for writing; never faults.
inline void prefetch_write(const void* p) {
  asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
}

// Direct "same" convolution (stride 1, OH == H, OW == W) with at most 16 output channels,
// written straight into dst; VT is VF (16 floats per vector) or VD (8 doubles).  Output
// plane j of a sample is flat, f = oy * W + ox, and is computed in blocks of L = VT::W
// consecutive pixels (one accumulator vector per output channel), the blocks starting at
// f = L v - s so that the stores are 64-byte aligned when the planes are (s = misalignment
// in elements, or 0).  The input is stored unpadded in width with zero rows above and
// below, so tap (c, ky, kx) of a block is one shifted load, lanes whose column ox + kx - pw
// leaves the image masked to zero (none for kx == pw), and that vector feeds F FMAs with
// the weights broadcast from memory (accumulators start at the bias; ReLU before the store if set).  The output is far
// larger than L2, so the stores set the pace: each block prefetches its F output lines for
// writing before its FMAs, which keeps the line transfers running underneath the
// arithmetic.  (Measured and dropped, float: tiles of 8 channels by 3 blocks, fewer loads
// per FMA but no faster; prefetching a tile or more ahead; streaming stores.)
template <class VT, int F, int KW>
void same_planes(const FlatJob<typename VT::T>& job, const typename VT::T* xb, int64_t P,
                 const typename VT::Mask* masks, int64_t nb, int64_t s, typename VT::T* d) {
  using T = typename VT::T;
  using R = typename VT::R;
  using Mask = typename VT::Mask;
  constexpr int L = VT::W;
  const int64_t kw = KW > 0 ? KW : job.kw, kh = job.kh, Wd = job.W, cin = job.cin;
  const int64_t HW = job.OH * job.OW, nout = job.nout;
  const T* bias = job.bias;
  const Mask* mv = masks;
  for (int64_t f0 = -s; f0 < L * nb - s; f0 += L, mv += kw) {
    T* dv = d + f0;  // plane j of the block at dv + j * hw
    // hw == HW, opaque to the compiler: otherwise it keeps F pointers on the stack and
    // bumps them there every block (F more stores, the resource this kernel is short of).
    int64_t hw = HW;
    asm("" : "+r"(hw));
    // Ask for the block's output lines now: the stores alone would only fetch them when
    // they commit, after the FMAs, and the writes would not overlap the arithmetic.
#pragma GCC unroll 16
    for (int j = 0; j < F; ++j) prefetch_write(dv + j * hw);
    R acc[F];
#pragma GCC unroll 16
    for (int j = 0; j < F; ++j) acc[j] = bias ? VT::set1(bias[j]) : VT::zero();
    // Lanes whose column ox + kx - pw is inside the image: all of them for kx == pw, which
    // is 1 when KW == 3 (see pick_same).
    Mask mk[KW > 0 ? KW : 16];
#pragma GCC unroll 16
    for (int kx = 0; kx < kw; ++kx) mk[kx] = mv[kx];
    const T* w = job.wt;
    const T* xc = xb + f0;
    for (int64_t c = 0; c < cin; ++c, xc += P) {
      const T* xr = xc;
#pragma GCC unroll 1
      for (int64_t ky = 0; ky < kh; ++ky, xr += Wd) {
#pragma GCC unroll 16
        for (int kx = 0; kx < kw; ++kx) {
          const R xv = KW == 3 && kx == 1 ? VT::load(xr + kx) : VT::maskz_load(mk[kx], xr + kx);
#pragma GCC unroll 16
          for (int j = 0; j < F; ++j) acc[j] = VT::fma(VT::set1(w[j]), xv, acc[j]);
          w += nout;
        }
      }
    }
    asm("" : "+r"(hw));  // again: recomputed addresses, not F spilled ones
    if (job.relu) {
#pragma GCC unroll 16
      for (int j = 0; j < F; ++j) acc[j] = VT::relu(acc[j]);
    }
    if (f0 >= 0 && f0 + L <= HW) {
#pragma GCC unroll 16
      for (int j = 0; j < F; ++j) VT::store(dv + j * hw, acc[j]);
    } else {
      // lanes l with 0 <= f0 + l < HW; the store starts at the block's first valid pixel
      const int64_t lo = f0 < 0 ? -f0 : 0, hi = HW - f0 < L ? HW - f0 : L;
      const Mask m = static_cast<Mask>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
#pragma GCC unroll 16
      for (int j = 0; j < F; ++j)
        VT::mask_store(dv + j * hw + lo, static_cast<Mask>(m >> lo), VT::compress(m, acc[j]));
    }
  }
}

template <class VT>
using SameFn = void (*)(const FlatJob<typename VT::T>&, const typename VT::T*, int64_t,
                        const typename VT::Mask*, int64_t, int64_t, typename VT::T*);

// The window width is a constant for 3 (the book's 3x3 layers, pw == 1), so its taps unroll.
template <class VT, int F>
SameFn<VT> pick_same(int f, const FlatJob<typename VT::T>& j) {
  if constexpr (F == 0) {
    return nullptr;
  } else {
    if (f == F) return j.kw == 3 && j.pw == 1 ? &same_planes<VT, F, 3> : &same_planes<VT, F, 0>;
    return pick_same<VT, F - 1>(f, j);
  }
}

// Input plane stride of same_planes: the image with ph rows + pw above and the rest of the
// window below, a vector of slack either side of the blocks' reach, whole vectors.
template <class VT>
int64_t same_plane(const FlatJob<typename VT::T>& j) {
  constexpr int64_t L = VT::W;
  return (L + j.ph * j.W + j.pw + j.H * j.W + (j.kh - 1 - j.ph) * j.W + j.kw + L + L - 1) / L * L;
}

// Elements of T that hold n masks (rounded up, plus one).
template <class VT>
int64_t mask_elems(int64_t n) {
  using T = typename VT::T;
  return (n * static_cast<int64_t>(sizeof(typename VT::Mask)) + static_cast<int64_t>(sizeof(T)) - 1) /
             static_cast<int64_t>(sizeof(T)) + 1;
}

// Whether same_planes handles the job: stride-1 "same" geometry, at most 16 output channels,
// and its buffers fit the flat path's scratch.
template <class VT>
bool same_ok(const FlatJob<typename VT::T>& j) {
  constexpr int64_t L = VT::W;
  if (!(j.OH == j.H && j.OW == j.W && j.ph >= 0 && j.pw >= 0 && j.ph < j.kh && j.pw < j.kw &&
        j.nout >= 1 && j.nout <= 16 && j.kw <= 16))
    return false;
  const int64_t nb = (j.H * j.W + L - 1) / L + 1;
  const int64_t need = L + j.cin * same_plane<VT>(j) + mask_elems<VT>(nb * j.kw);
  return need <= flat_scratch(j, L);
}

template <class VT>
void flat_conv_same(const FlatJob<typename VT::T>& job, int64_t n0, int64_t n1,
                    typename VT::T* scratch) {
  using T = typename VT::T;
  using Mask = typename VT::Mask;
  using Idx = typename VT::Idx;
  constexpr int L = VT::W;
  if (job.sink || !same_ok<VT>(job)) {  // the direct kernel writes dst itself
    flat_conv<VT>(job, n0, n1, scratch);
    return;
  }
  const int64_t Wd = job.W, HW = job.H * Wd, P = same_plane<VT>(job);
  const int64_t lead = job.ph * Wd + job.pw;  // image start within a plane
  // Block offset: aligned stores when every output plane has the same alignment.
  int64_t s = 0;
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(job.dst + n0 * job.dst_stride);
  if (a0 % sizeof(T) == 0 && HW % L == 0 && job.dst_stride % L == 0)
    s = static_cast<int64_t>(a0 % 64 / sizeof(T));
  const int64_t nb = (HW + s + L - 1) / L;
  // Plane c at xb + c * P, preceded by a vector of zeros: blocks reach from -L to P - L - 1.
  T* xb = scratch + L;
  Mask* masks = reinterpret_cast<Mask*>(scratch + L + job.cin * P);
  // Column of each lane's pixel, advanced one block at a time (no divisions).
  alignas(64) Idx col[L];
  for (int l = 0; l < L; ++l) col[l] = static_cast<Idx>(((l - s) % Wd + Wd) % Wd);
  __m512i ox = _mm512_load_si512(col);
  const __m512i wv = VT::iset1(static_cast<Idx>(Wd)), step = VT::iset1(L);
  const __m512i zero = _mm512_setzero_si512();
  for (int64_t v = 0; v < nb; ++v) {
    for (int64_t kx = 0; kx < job.kw; ++kx) {
      const __m512i ix = VT::iadd(ox, VT::iset1(static_cast<Idx>(kx - job.pw)));
      masks[v * job.kw + kx] = VT::ige(ix, zero) & VT::ilt(ix, wv);
    }
    ox = VT::iadd(ox, step);
    for (Mask m; (m = VT::ige(ox, wv)) != 0;) ox = VT::isub_where(ox, m, wv);
  }
  const SameFn<VT> fn = pick_same<VT, 16>(static_cast<int>(job.nout), job);
  for (int64_t k = 0; k < L; ++k) scratch[k] = T(0);
  for (int64_t n = n0; n < n1; ++n) {
    // xb + c * P + f + ky * W + kx holds input (oy + ky - ph, ox + kx - pw) of pixel f = oy * W + ox.
    for (int64_t c = 0; c < job.cin; ++c) {
      T* p = xb + c * P;
      const int64_t o = n * job.src_stride + c * HW;
      for (int64_t k = 0; k < lead; ++k) p[k] = T(0);
      copy_src<VT>(job.src + o, job.gate ? job.gate + o : nullptr, HW, p + lead);
      for (int64_t k = lead + HW; k < P; ++k) p[k] = T(0);
    }
    fn(job, xb, P, masks, nb, s, job.dst + n * job.dst_stride);
  }
}

}  // namespace avx512

void get_kernels_avx512(Kernels<float>* f, Kernels<double>* d) {
  avx512::fill_kernels<avx512::VF>(f);
  avx512::fill_kernels<avx512::VD>(d);
  // same_planes where it applies, else the flat tiles
  f->flat_conv = &avx512::flat_conv_same<avx512::VF>;
  d->flat_conv = &avx512::flat_conv_same<avx512::VD>;
  f->same_nout = d->same_nout = 16;
  f->sparse_backward_narrow = &avx512::sparse_backward_pairs;
}

}  // namespace conv
}  // namespace fastdl
