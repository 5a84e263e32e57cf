// Max pooling 2x2 / stride 2 / no padding with AVX-512 (compiled with AVX-512 flags; called
// only when cpu_level() says so).  One plane per call; 16 (float) or 8 (double) windows per
// step, masked loads and stores for the row tail.
#include <immintrin.h>

#include <cstdint>

#include "pool.h"

namespace fastdl {

namespace {

// Lanes where c replaces best: strictly greater, or c is the first NaN.
inline __mmask16 take(__m512 c, __m512 best) {
  return _mm512_cmp_ps_mask(c, best, _CMP_GT_OQ) |
         (_mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q) & _mm512_cmp_ps_mask(best, best, _CMP_ORD_Q));
}

inline __mmask8 take(__m512d c, __m512d best) {
  return _mm512_cmp_pd_mask(c, best, _CMP_GT_OQ) |
         (_mm512_cmp_pd_mask(c, c, _CMP_UNORD_Q) & _mm512_cmp_pd_mask(best, best, _CMP_ORD_Q));
}

inline uint32_t low_bits(int64_t n) { return n >= 32 ? 0xFFFFFFFFu : ((1u << n) - 1u); }

template <bool B>
struct Flag {
  static constexpr bool value = B;
};

}  // namespace

namespace {

// Rows ldx apart; Bias: b added to every cell as it is loaded (z = x + b, then pooled).
// Index int64_t: am holds the argmax as an index into the H x W plane; int8_t: the argmax
// cell of its window (pool.h: kCell*), both -1 where the ReLU stopped the window.
template <bool Bias, class Index>
void pool2x2_f32(const float* x, int64_t ldx, float b, float* y, Index* am, int64_t H, int64_t W, bool relu) {
  constexpr bool cells = sizeof(Index) == 1;
  const int64_t OH = H / 2, OW = W / 2;
  const __m512 bv = _mm512_set1_ps(b);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512i o1 = _mm512_set1_epi32(cells ? kCellRight : 1),
                oW = _mm512_set1_epi32(cells ? kCellDown : static_cast<int>(W)),
                oW1 = _mm512_set1_epi32(cells ? kCellDownRight : static_cast<int>(W + 1));
  for (int64_t oy = 0; oy < OH; ++oy) {
    const float* r0 = x + 2 * oy * ldx;
    const float* r1 = r0 + ldx;
    float* yr = y + oy * OW;
    Index* ar = am + oy * OW;
    for (int64_t ox = 0; ox < OW; ox += 16) {
      const int64_t n = OW - ox < 16 ? OW - ox : 16;
      const __mmask16 m = static_cast<__mmask16>(low_bits(n));
      const uint32_t m2 = low_bits(2 * n);
      const __mmask16 mlo = static_cast<__mmask16>(m2), mhi = static_cast<__mmask16>(m2 >> 16);
      __m512 a0 = _mm512_maskz_loadu_ps(mlo, r0 + 2 * ox);
      __m512 b0 = _mm512_maskz_loadu_ps(mhi, r0 + 2 * ox + 16);
      __m512 a1 = _mm512_maskz_loadu_ps(mlo, r1 + 2 * ox);
      __m512 b1 = _mm512_maskz_loadu_ps(mhi, r1 + 2 * ox + 16);
      if (Bias) {
        a0 = _mm512_add_ps(a0, bv);
        b0 = _mm512_add_ps(b0, bv);
        a1 = _mm512_add_ps(a1, bv);
        b1 = _mm512_add_ps(b1, bv);
      }
      // NaN: take() (a strict > or the first NaN); without a NaN in the 32 cells (the
      // common case, two compares tell) a strict > alone, and the ReLU keeps no NaN: five
      // compares fewer on the port the permutes need.
      const auto windows = [&](auto nan_tag) __attribute__((always_inline)) {
        constexpr bool NaN = decltype(nan_tag)::value;
        const auto better = [](__m512 c, __m512 bst) __attribute__((always_inline)) {
          if constexpr (NaN) return take(c, bst);
          return _mm512_cmp_ps_mask(c, bst, _CMP_GT_OQ);
        };
        __m512 best = _mm512_permutex2var_ps(a0, even, b0);
        __m512i off = _mm512_setzero_si512();
        const __m512 c1 = _mm512_permutex2var_ps(a0, odd, b0);
        __mmask16 k = better(c1, best);
        best = _mm512_mask_mov_ps(best, k, c1);
        off = _mm512_mask_mov_epi32(off, k, o1);
        const __m512 c2 = _mm512_permutex2var_ps(a1, even, b1);
        k = better(c2, best);
        best = _mm512_mask_mov_ps(best, k, c2);
        off = _mm512_mask_mov_epi32(off, k, oW);
        const __m512 c3 = _mm512_permutex2var_ps(a1, odd, b1);
        k = better(c3, best);
        best = _mm512_mask_mov_ps(best, k, c3);
        off = _mm512_mask_mov_epi32(off, k, oW1);
        __m512i idx = cells ? off
                            : _mm512_add_epi32(
                                  _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(2 * oy * W + 2 * ox)), even),
                                  off);
        if (relu) {  // pool.h: max(best, 0) with NaN kept; -1 where best is not > 0
          const __mmask16 pos = _mm512_cmp_ps_mask(best, _mm512_setzero_ps(), _CMP_GT_OQ);
          const __mmask16 nan = NaN ? _mm512_cmp_ps_mask(best, best, _CMP_UNORD_Q) : 0;
          best = _mm512_mask_mov_ps(_mm512_setzero_ps(), static_cast<__mmask16>(pos | nan), best);
          idx = _mm512_mask_mov_epi32(_mm512_set1_epi32(-1), pos, idx);
        }
        _mm512_mask_storeu_ps(yr + ox, m, best);
        if constexpr (cells) {
          _mm512_mask_cvtepi32_storeu_epi8(ar + ox, m, idx);
        } else {
          _mm512_mask_storeu_epi64(ar + ox, static_cast<__mmask8>(m),
                                   _mm512_cvtepi32_epi64(_mm512_castsi512_si256(idx)));
          _mm512_mask_storeu_epi64(ar + ox + 8, static_cast<__mmask8>(m >> 8),
                                   _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(idx, 1)));
        }
      };
      if ((_mm512_cmp_ps_mask(a0, b0, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(a1, b1, _CMP_UNORD_Q)) == 0)
        windows(Flag<false>{});
      else
        windows(Flag<true>{});
    }
  }
}

template <bool Bias, class Index>
void pool2x2_f64(const double* x, int64_t ldx, double b, double* y, Index* am, int64_t H, int64_t W, bool relu) {
  constexpr bool cells = sizeof(Index) == 1;
  const int64_t OH = H / 2, OW = W / 2;
  const __m512d bv = _mm512_set1_pd(b);
  const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
  const __m512i o1 = _mm512_set1_epi64(cells ? kCellRight : 1), oW = _mm512_set1_epi64(cells ? kCellDown : W),
                oW1 = _mm512_set1_epi64(cells ? kCellDownRight : W + 1);
  for (int64_t oy = 0; oy < OH; ++oy) {
    const double* r0 = x + 2 * oy * ldx;
    const double* r1 = r0 + ldx;
    double* yr = y + oy * OW;
    Index* ar = am + oy * OW;
    for (int64_t ox = 0; ox < OW; ox += 8) {
      const int64_t n = OW - ox < 8 ? OW - ox : 8;
      const __mmask8 m = static_cast<__mmask8>(low_bits(n));
      const uint32_t m2 = low_bits(2 * n);
      const __mmask8 mlo = static_cast<__mmask8>(m2), mhi = static_cast<__mmask8>(m2 >> 8);
      __m512d a0 = _mm512_maskz_loadu_pd(mlo, r0 + 2 * ox);
      __m512d b0 = _mm512_maskz_loadu_pd(mhi, r0 + 2 * ox + 8);
      __m512d a1 = _mm512_maskz_loadu_pd(mlo, r1 + 2 * ox);
      __m512d b1 = _mm512_maskz_loadu_pd(mhi, r1 + 2 * ox + 8);
      if (Bias) {
        a0 = _mm512_add_pd(a0, bv);
        b0 = _mm512_add_pd(b0, bv);
        a1 = _mm512_add_pd(a1, bv);
        b1 = _mm512_add_pd(b1, bv);
      }
      __m512d best = _mm512_permutex2var_pd(a0, even, b0);
      __m512i off = _mm512_setzero_si512();
      const __m512d c1 = _mm512_permutex2var_pd(a0, odd, b0);
      __mmask8 k = take(c1, best);
      best = _mm512_mask_mov_pd(best, k, c1);
      off = _mm512_mask_mov_epi64(off, k, o1);
      const __m512d c2 = _mm512_permutex2var_pd(a1, even, b1);
      k = take(c2, best);
      best = _mm512_mask_mov_pd(best, k, c2);
      off = _mm512_mask_mov_epi64(off, k, oW);
      const __m512d c3 = _mm512_permutex2var_pd(a1, odd, b1);
      k = take(c3, best);
      best = _mm512_mask_mov_pd(best, k, c3);
      off = _mm512_mask_mov_epi64(off, k, oW1);
      __m512i idx = cells ? off : _mm512_add_epi64(_mm512_add_epi64(_mm512_set1_epi64(2 * oy * W + 2 * ox), even), off);
      if (relu) {
        const __mmask8 pos = _mm512_cmp_pd_mask(best, _mm512_setzero_pd(), _CMP_GT_OQ);
        const __mmask8 nan = _mm512_cmp_pd_mask(best, best, _CMP_UNORD_Q);
        best = _mm512_mask_mov_pd(_mm512_setzero_pd(), static_cast<__mmask8>(pos | nan), best);
        idx = _mm512_mask_mov_epi64(_mm512_set1_epi64(-1), pos, idx);
      }
      _mm512_mask_storeu_pd(yr + ox, m, best);
      if constexpr (cells)
        _mm512_mask_cvtepi64_storeu_epi8(ar + ox, m, idx);
      else
        _mm512_mask_storeu_epi64(ar + ox, m, idx);
    }
  }
}

}  // namespace

void maxpool2x2_forward_f32_avx512(const float* x, float* y, int64_t* am, int64_t H, int64_t W, bool relu) {
  pool2x2_f32<false, int64_t>(x, W, 0.0f, y, am, H, W, relu);
}

void maxpool2x2_forward_f64_avx512(const double* x, double* y, int64_t* am, int64_t H, int64_t W, bool relu) {
  pool2x2_f64<false, int64_t>(x, W, 0.0, y, am, H, W, relu);
}

void maxpool2x2_bias_relu_f32_avx512(const float* x, int64_t ldx, float b, float* y, int8_t* cell, int64_t H,
                                     int64_t W) {
  pool2x2_f32<true, int8_t>(x, ldx, b, y, cell, H, W, true);
}

void maxpool2x2_bias_relu_f64_avx512(const double* x, int64_t ldx, double b, double* y, int8_t* cell, int64_t H,
                                     int64_t W) {
  pool2x2_f64<true, int8_t>(x, ldx, b, y, cell, H, W, true);
}

namespace {

// OW <= 8: two output rows per step (row oy in lanes 0-7, row oy+1 in lanes 8-15).
bool backward_narrow(const float* dy, const int64_t* am, float* dx, int64_t H, int64_t W, bool relu) {
  const int64_t OH = H / 2, OW = W / 2;
  const int w = static_cast<int>(W);
  const __m512i cell = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 2 * w, 2 * w + 2, 2 * w + 4, 2 * w + 6,
                                         2 * w + 8, 2 * w + 10, 2 * w + 12, 2 * w + 14);
  const __m512i ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i ihi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512i o0 = _mm512_setzero_si512(), o1 = _mm512_set1_epi32(1), oW = _mm512_set1_epi32(w),
                oW1 = _mm512_set1_epi32(w + 1);
  const __mmask16 row = static_cast<__mmask16>(low_bits(OW));
  const __mmask16 cells = static_cast<__mmask16>(low_bits(2 * OW));
  for (int64_t oy = 0; oy < OH; oy += 2) {
    const bool two = oy + 1 < OH;
    const int64_t n = two ? 2 * OW : OW;                       // windows in this step
    const __mmask16 lanes = two ? static_cast<__mmask16>(row | (row << 8)) : row;
    const uint32_t mn = low_bits(n);
    const __m512 v = _mm512_maskz_expand_ps(lanes, _mm512_maskz_loadu_ps(static_cast<__mmask16>(mn), dy + oy * OW));
    const __m512i a_lo = _mm512_maskz_loadu_epi64(static_cast<__mmask8>(mn), am + oy * OW);
    const __m512i a_hi = _mm512_maskz_loadu_epi64(static_cast<__mmask8>(mn >> 8), am + oy * OW + 8);
    // Saturated to int32: an out-of-range index never matches a cell.
    const __m512i a = _mm512_maskz_expand_epi32(
        lanes, _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtsepi64_epi32(a_lo)), _mm512_cvtsepi64_epi32(a_hi), 1));
    const __m512i off = _mm512_sub_epi32(a, _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(2 * oy * W)), cell));
    const __mmask16 k0 = _mm512_mask_cmpeq_epi32_mask(lanes, off, o0);
    const __mmask16 k1 = _mm512_mask_cmpeq_epi32_mask(lanes, off, o1);
    const __mmask16 k2 = _mm512_mask_cmpeq_epi32_mask(lanes, off, oW);
    const __mmask16 k3 = _mm512_mask_cmpeq_epi32_mask(lanes, off, oW1);
    const __mmask16 skip = relu ? _mm512_mask_cmpeq_epi32_mask(lanes, a, _mm512_set1_epi32(-1)) : 0;
    if (static_cast<__mmask16>(k0 | k1 | k2 | k3 | skip) != lanes) return false;
    const __m512 v0 = _mm512_maskz_mov_ps(k0, v), v1 = _mm512_maskz_mov_ps(k1, v);
    const __m512 v2 = _mm512_maskz_mov_ps(k2, v), v3 = _mm512_maskz_mov_ps(k3, v);
    float* d = dx + 2 * oy * W;
    _mm512_mask_storeu_ps(d, cells, _mm512_permutex2var_ps(v0, ilo, v1));
    _mm512_mask_storeu_ps(d + W, cells, _mm512_permutex2var_ps(v2, ilo, v3));
    if (two) {
      _mm512_mask_storeu_ps(d + 2 * W, cells, _mm512_permutex2var_ps(v0, ihi, v1));
      _mm512_mask_storeu_ps(d + 3 * W, cells, _mm512_permutex2var_ps(v2, ihi, v3));
    }
  }
  if (W & 1)  // odd W: the last column is in no window
    for (int64_t iy = 0; iy < 2 * OH; ++iy) dx[iy * W + W - 1] = 0.0f;
  for (int64_t i = 2 * OH * W; i < H * W; ++i) dx[i] = 0.0f;  // odd H: last row
  return true;
}

}  // namespace

bool maxpool2x2_backward_f32_avx512(const float* dy, const int64_t* am, float* dx, int64_t H, int64_t W,
                                    bool relu) {
  const int64_t OH = H / 2, OW = W / 2;
  if (OW <= 8) return backward_narrow(dy, am, dx, H, W, relu);
  const __m512i none = _mm512_set1_epi64(-1);
  const __m512i lane2_lo = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i lane2_hi = _mm512_setr_epi64(16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i ihi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512i o0 = _mm512_setzero_si512(), o1 = _mm512_set1_epi32(1),
                oW = _mm512_set1_epi32(static_cast<int>(W)), oW1 = _mm512_set1_epi32(static_cast<int>(W + 1));
  for (int64_t oy = 0; oy < OH; ++oy) {
    float* d0 = dx + 2 * oy * W;
    float* d1 = d0 + W;
    const float* g = dy + oy * OW;
    const int64_t* ar = am + oy * OW;
    for (int64_t ox = 0; ox < OW; ox += 16) {
      const int64_t n = OW - ox < 16 ? OW - ox : 16;
      const __mmask16 m = static_cast<__mmask16>(low_bits(n));
      const uint32_t m2 = low_bits(2 * n);
      const __mmask16 mlo = static_cast<__mmask16>(m2), mhi = static_cast<__mmask16>(m2 >> 16);
      const __m512 v = _mm512_maskz_loadu_ps(m, g + ox);
      const __m512i base = _mm512_set1_epi64(2 * oy * W + 2 * ox);
      const __m512i a_lo = _mm512_maskz_loadu_epi64(static_cast<__mmask8>(m), ar + ox);
      const __m512i a_hi = _mm512_maskz_loadu_epi64(static_cast<__mmask8>(m >> 8), ar + ox + 8);
      // Offset of each argmax inside its window, saturated to int32 (garbage never matches).
      const __m256i off_lo = _mm512_cvtsepi64_epi32(_mm512_sub_epi64(a_lo, _mm512_add_epi64(base, lane2_lo)));
      const __m256i off_hi = _mm512_cvtsepi64_epi32(_mm512_sub_epi64(a_hi, _mm512_add_epi64(base, lane2_hi)));
      const __m512i off = _mm512_inserti64x4(_mm512_castsi256_si512(off_lo), off_hi, 1);
      const __mmask16 k0 = _mm512_mask_cmpeq_epi32_mask(m, off, o0);
      const __mmask16 k1 = _mm512_mask_cmpeq_epi32_mask(m, off, o1);
      const __mmask16 k2 = _mm512_mask_cmpeq_epi32_mask(m, off, oW);
      const __mmask16 k3 = _mm512_mask_cmpeq_epi32_mask(m, off, oW1);
      const __mmask16 skip =
          relu ? static_cast<__mmask16>((_mm512_cmpeq_epi64_mask(a_lo, none) |
                                         (static_cast<unsigned>(_mm512_cmpeq_epi64_mask(a_hi, none)) << 8)) & m)
               : static_cast<__mmask16>(0);
      if (static_cast<__mmask16>(k0 | k1 | k2 | k3 | skip) != m) return false;
      const __m512 v0 = _mm512_maskz_mov_ps(k0, v), v1 = _mm512_maskz_mov_ps(k1, v);
      const __m512 v2 = _mm512_maskz_mov_ps(k2, v), v3 = _mm512_maskz_mov_ps(k3, v);
      _mm512_mask_storeu_ps(d0 + 2 * ox, mlo, _mm512_permutex2var_ps(v0, ilo, v1));
      _mm512_mask_storeu_ps(d0 + 2 * ox + 16, mhi, _mm512_permutex2var_ps(v0, ihi, v1));
      _mm512_mask_storeu_ps(d1 + 2 * ox, mlo, _mm512_permutex2var_ps(v2, ilo, v3));
      _mm512_mask_storeu_ps(d1 + 2 * ox + 16, mhi, _mm512_permutex2var_ps(v2, ihi, v3));
    }
    for (int64_t ix = 2 * OW; ix < W; ++ix) d0[ix] = d1[ix] = 0.0f;  // odd W: last column
  }
  for (int64_t i = 2 * OH * W; i < H * W; ++i) dx[i] = 0.0f;  // odd H: last row
  return true;
}

}  // namespace fastdl
