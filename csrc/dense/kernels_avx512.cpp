// AVX-512 pieces of the dense GEMM (see dense.h): the packing of B and the register tile.
#include <immintrin.h>

#include <cstdint>

#include "dense.h"
#include "support/exp_avx512.h"
#include "support/transpose_avx512.h"

namespace fastdl {
namespace dense {

namespace {

inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1u);
}

// 1 / (1 + exp(-v)) with exp of a non-positive argument only: e = exp(-|v|), then
// 1 / (1 + e) for v >= 0 and e / (1 + e) below.  NaN stays NaN.
__attribute__((always_inline)) inline __m512 sigmoid16(__m512 v) {
  const __m512 e = avx512::exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(v)));
  const __m512 r = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
  const __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mask_mul_ps(r, neg, r, e);
}

__attribute__((always_inline)) inline __m512 activate(__m512 v, int act) {
  if (act == kRelu) return _mm512_max_ps(_mm512_setzero_ps(), v);  // NaN kept (second operand)
  if (act == kSigmoid) return sigmoid16(v);
  return v;
}

// Direct: B read in place (rows of ldp floats, the last vector masked) instead of packed.
template <int MR, int NV, bool Direct>
void tile(const float* a, int64_t sam, int64_t sak, const float* p, int64_t ldp, int64_t kc, float* c,
          int64_t ldc, int nc, bool first, bool last, const float* bias, int act) {
  const __mmask16 mask = lanes(nc - 16 * (NV - 1));  // the last vector's columns
  const auto load_b = [&](int64_t k, int v) {
    if (!Direct) return _mm512_load_ps(p + k * kNR + 16 * v);
    return v == NV - 1 ? _mm512_maskz_loadu_ps(mask, p + k * ldp + 16 * v) : _mm512_loadu_ps(p + k * ldp + 16 * v);
  };
  // U accumulator sets over interleaved steps of k: at least 8 independent FMA chains (two
  // FMAs a cycle, four cycles each), which a small tile (one row of a matrix-vector product)
  // would not have.  Summed in a fixed order at the end.
  constexpr int U = MR * NV >= 8 ? 1 : MR * NV >= 4 ? 2 : 4;
  __m512 acc[U][MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) {
      acc[0][r][v] = first ? _mm512_setzero_ps()
                           : v == NV - 1 ? _mm512_maskz_loadu_ps(mask, c + r * ldc + 16 * v)
                                         : _mm512_loadu_ps(c + r * ldc + 16 * v);
      for (int u = 1; u < U; ++u) acc[u][r][v] = _mm512_setzero_ps();
    }
  // All of k with A's step along k `sk`: called with a literal 1 for row-major A (the common
  // case), so that the broadcasts' addresses are a + r * sam + k there.
  const auto run = [&](int64_t sk) __attribute__((always_inline)) {
    const auto step = [&](int64_t k, int u) __attribute__((always_inline)) {
      __m512 bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = load_b(k, v);
      const float* ak = a + k * sk;
      for (int r = 0; r < MR; ++r) {
        const __m512 av = _mm512_set1_ps(ak[r * sam]);
        for (int v = 0; v < NV; ++v) acc[u][r][v] = _mm512_fmadd_ps(av, bv[v], acc[u][r][v]);
      }
    };
    const int64_t kfull = kc / U * U;
    for (int64_t k = 0; k < kfull; k += U)
      for (int u = 0; u < U; ++u) step(k + u, u);
    for (int64_t k = kfull; k < kc; ++k) step(k, 0);
  };
  if (sak == 1)
    run(1);
  else
    run(sak);
  for (int u = 1; u < U; ++u)
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[0][r][v] = _mm512_add_ps(acc[0][r][v], acc[u][r][v]);
  if (last) {
    __m512 bb[NV];
    for (int v = 0; v < NV; ++v)
      bb[v] = bias ? _mm512_maskz_loadu_ps(v == NV - 1 ? mask : lanes(16), bias + 16 * v) : _mm512_setzero_ps();
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) {
        if (bias) acc[0][r][v] = _mm512_add_ps(acc[0][r][v], bb[v]);
        acc[0][r][v] = activate(acc[0][r][v], act);
      }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) {
      if (v == NV - 1)
        _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mask, acc[0][r][v]);
      else
        _mm512_storeu_ps(c + r * ldc + 16 * v, acc[0][r][v]);
    }
}

using TileFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t, int64_t, float*, int64_t, int, bool,
                        bool, const float*, int);

template <bool Direct>
void run_tile(const float* a, int64_t sam, int64_t sak, const float* p, int64_t ldp, int64_t kc, float* c,
              int64_t ldc, int rows, int nc, bool first, bool last, const float* bias, int act) {
  static const TileFn one[kMR] = {
      &tile<1, 1, Direct>, &tile<2, 1, Direct>, &tile<3, 1, Direct>,  &tile<4, 1, Direct>,
      &tile<5, 1, Direct>, &tile<6, 1, Direct>, &tile<7, 1, Direct>,  &tile<8, 1, Direct>,
      &tile<9, 1, Direct>, &tile<10, 1, Direct>, &tile<11, 1, Direct>, &tile<12, 1, Direct>};
  static const TileFn two[kMR] = {
      &tile<1, 2, Direct>, &tile<2, 2, Direct>, &tile<3, 2, Direct>,  &tile<4, 2, Direct>,
      &tile<5, 2, Direct>, &tile<6, 2, Direct>, &tile<7, 2, Direct>,  &tile<8, 2, Direct>,
      &tile<9, 2, Direct>, &tile<10, 2, Direct>, &tile<11, 2, Direct>, &tile<12, 2, Direct>};
  (nc > 16 ? two : one)[rows - 1](a, sam, sak, p, ldp, kc, c, ldc, nc, first, last, bias, act);
}

}  // namespace

void pack_b_f32_avx512(const float* b, int64_t ldb, bool b_trans, int64_t k0, int64_t kc, int64_t n0,
                       int64_t nc, float* p) {
  if (!b_trans) {
    const __mmask16 m0 = lanes(nc), m1 = lanes(nc - 16);
    for (int64_t k = 0; k < kc; ++k) {
      const float* row = b + (k0 + k) * ldb + n0;
      _mm512_store_ps(p + k * kNR, _mm512_maskz_loadu_ps(m0, row));
      _mm512_store_ps(p + k * kNR + 16, _mm512_maskz_loadu_ps(m1, row + 16));
    }
    return;
  }
  // B(k, n) = b[n * ldb + k]: 16 x 16 blocks of b's rows n, transposed in registers.
  for (int64_t kb = 0; kb < kc; kb += 16) {
    const int64_t kn = kc - kb < 16 ? kc - kb : 16;
    const __mmask16 km = lanes(kn);
    for (int h = 0; h < 2; ++h) {
      __m512 r[16];
      for (int j = 0; j < 16; ++j) {
        const int64_t n = 16 * h + j;
        r[j] = n < nc ? _mm512_maskz_loadu_ps(km, b + (n0 + n) * ldb + k0 + kb) : _mm512_setzero_ps();
      }
      avx512::transpose16_ps(r);
      for (int64_t i = 0; i < kn; ++i) _mm512_store_ps(p + (kb + i) * kNR + 16 * h, r[i]);
    }
  }
}

void tile_f32_avx512(const float* a, int64_t sam, int64_t sak, const float* p, int64_t kc, float* c,
                     int64_t ldc, int rows, int nc, bool first, bool last, const float* bias, int act) {
  run_tile<false>(a, sam, sak, p, kNR, kc, c, ldc, rows, nc, first, last, bias, act);
}

namespace {

// C row (nc lanes of cm) = sums s added to C (unless first), then bias and act (if last): the
// tile's epilogue for the columns of rem_f32_avx512.
__attribute__((always_inline)) inline void finish_row(float* crow, __m512 v, __mmask16 cm, bool first, bool last,
                                                      const float* bias, int act) {
  if (!first) v = _mm512_add_ps(_mm512_maskz_loadu_ps(cm, crow), v);
  if (last) {
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(cm, bias));
    v = activate(v, act);
  }
  _mm512_mask_storeu_ps(crow, cm, v);
}

// sak == 1: 4 rows x 4 columns of dot products along k at a time (16 lanes of k each), B's
// columns the rows of bt (ldt apart).  Rows and columns past the edge repeat the last one's
// loads; their sums are dropped.
void rem_dot(const float* a, int64_t sam, const float* bt, int64_t ldt, int64_t kc, int nc, float* c, int64_t ldc,
             int64_t rows, bool first, bool last, const float* bias, int act) {
  const __mmask16 cm = lanes(nc);
  for (int64_t m = 0; m < rows; m += 4) {
    alignas(64) float sums[4][16] = {};
    for (int j0 = 0; j0 < nc; j0 += 4) {
      const float* ar[4];
      const float* br[4];
      for (int r = 0; r < 4; ++r) ar[r] = a + (m + (m + r < rows ? r : rows - 1 - m)) * sam;
      for (int j = 0; j < 4; ++j) br[j] = bt + (j0 + (j0 + j < nc ? j : nc - 1 - j0)) * ldt;
      __m512 acc[4][4];
      for (int r = 0; r < 4; ++r)
        for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_setzero_ps();
      for (int64_t k = 0; k < kc; k += 16) {
        const __mmask16 km = lanes(kc - k);
        __m512 av[4], bv[4];
        for (int r = 0; r < 4; ++r) av[r] = _mm512_maskz_loadu_ps(km, ar[r] + k);
        for (int j = 0; j < 4; ++j) bv[j] = _mm512_maskz_loadu_ps(km, br[j] + k);
        for (int r = 0; r < 4; ++r)
          for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_fmadd_ps(av[r], bv[j], acc[r][j]);
      }
      for (int r = 0; r < 4; ++r)
        for (int j = 0; j < 4 && j0 + j < nc; ++j) sums[r][j0 + j] = _mm512_reduce_add_ps(acc[r][j]);
    }
    for (int r = 0; r < 4 && m + r < rows; ++r)
      finish_row(c + (m + r) * ldc, _mm512_load_ps(sums[r]), cm, first, last, bias, act);
  }
}

// sam == 1 (A(m, k) = a[m + k * sak]): NC columns of 32 rows at a time, vectors along m times
// B(k, j) broadcast.
template <int NC>
void rem_axpy(const float* a, int64_t sak, const float* b, int64_t ldb, bool b_trans, int64_t kc, float* c,
              int64_t ldc, int64_t rows, bool first, bool last, const float* bias, int act) {
  const __mmask16 cm = lanes(NC);
  const int64_t bk = b_trans ? 1 : ldb, bj = b_trans ? ldb : 1;  // B(k, j) = b[k * bk + j * bj]
  const __m512i jidx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(32));
  for (int64_t m = 0; m < rows; m += 32) {
    const __mmask16 m0 = lanes(rows - m), m1 = lanes(rows - m - 16);
    __m512 acc[2][NC];
    for (int j = 0; j < NC; ++j) acc[0][j] = acc[1][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
      const float* ak = a + k * sak + m;
      const __m512 a0 = _mm512_maskz_loadu_ps(m0, ak), a1 = _mm512_maskz_loadu_ps(m1, ak + 16);
      for (int j = 0; j < NC; ++j) {
        const __m512 bv = _mm512_set1_ps(b[k * bk + j * bj]);
        acc[0][j] = _mm512_fmadd_ps(a0, bv, acc[0][j]);
        acc[1][j] = _mm512_fmadd_ps(a1, bv, acc[1][j]);
      }
    }
    alignas(64) float col[NC][32];  // col[j][i]: row m + i, column j
    for (int j = 0; j < NC; ++j) {
      _mm512_store_ps(col[j], acc[0][j]);
      _mm512_store_ps(col[j] + 16, acc[1][j]);
    }
    const int64_t n = rows - m < 32 ? rows - m : 32;
    for (int64_t i = 0; i < n; ++i)
      finish_row(c + (m + i) * ldc, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), cm, jidx, &col[0][i], 4), cm,
                 first, last, bias, act);
  }
}

}  // namespace

void rem_f32_avx512(const float* a, int64_t sam, int64_t sak, const float* b, int64_t ldb, bool b_trans,
                    int64_t k0, int64_t kc, int64_t n0, int nc, float* c, int64_t ldc, int64_t rows, bool first,
                    bool last, const float* bias, int act, float* scratch) {
  if (sak == 1) {
    if (b_trans) {  // B's columns are b's rows
      rem_dot(a + k0, sam, b + n0 * ldb + k0, ldb, kc, nc, c, ldc, rows, first, last, bias, act);
      return;
    }
    // B's nc columns copied as rows of kKC + 16 floats (16 x 16 blocks transposed in registers)
    const int64_t ldt = kKC + 16;
    const __mmask16 cm = lanes(nc);
    for (int64_t kb = 0; kb < kc; kb += 16) {
      const int64_t kn = kc - kb < 16 ? kc - kb : 16;
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = i < kn ? _mm512_maskz_loadu_ps(cm, b + (k0 + kb + i) * ldb + n0) : _mm512_setzero_ps();
      avx512::transpose16_ps(r);
      for (int j = 0; j < nc; ++j) _mm512_store_ps(scratch + j * ldt + kb, r[j]);
    }
    rem_dot(a + k0, sam, scratch, ldt, kc, nc, c, ldc, rows, first, last, bias, act);
    return;
  }
  // sam == 1
  const float* bp = b + (b_trans ? n0 * ldb + k0 : k0 * ldb + n0);
  const float* ap = a + k0 * sak;
  switch (nc) {
    case 1: rem_axpy<1>(ap, sak, bp, ldb, b_trans, kc, c, ldc, rows, first, last, bias, act); break;
    case 2: rem_axpy<2>(ap, sak, bp, ldb, b_trans, kc, c, ldc, rows, first, last, bias, act); break;
    case 3: rem_axpy<3>(ap, sak, bp, ldb, b_trans, kc, c, ldc, rows, first, last, bias, act); break;
    case 4: rem_axpy<4>(ap, sak, bp, ldb, b_trans, kc, c, ldc, rows, first, last, bias, act); break;
    case 5: rem_axpy<5>(ap, sak, bp, ldb, b_trans, kc, c, ldc, rows, first, last, bias, act); break;
    case 6: rem_axpy<6>(ap, sak, bp, ldb, b_trans, kc, c, ldc, rows, first, last, bias, act); break;
    case 7: rem_axpy<7>(ap, sak, bp, ldb, b_trans, kc, c, ldc, rows, first, last, bias, act); break;
    default: rem_axpy<8>(ap, sak, bp, ldb, b_trans, kc, c, ldc, rows, first, last, bias, act); break;
  }
}

namespace {

// C[0..MR) x [0..N) in one sweep over B's rows, all NV vectors of a row at once: the
// matrix-vector products of a batch of one to three samples (W read once, row after row).
template <int MR, int NV>
void sweep(const float* a, int64_t sam, int64_t sak, const float* b, int64_t ldb, int64_t K, float* c,
           int64_t ldc, int N, const float* bias, int act) {
  const __mmask16 mask = lanes(N - 16 * (NV - 1));
  __m512 acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const float* row = b + k * ldb;
    __m512 bv[NV];
    for (int v = 0; v < NV; ++v)
      bv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(mask, row + 16 * v) : _mm512_loadu_ps(row + 16 * v);
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * sam + k * sak]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  for (int v = 0; v < NV; ++v) {
    const __mmask16 m = v == NV - 1 ? mask : lanes(16);
    const __m512 bb = bias ? _mm512_maskz_loadu_ps(m, bias + 16 * v) : _mm512_setzero_ps();
    for (int r = 0; r < MR; ++r)
      _mm512_mask_storeu_ps(c + r * ldc + 16 * v, m, activate(_mm512_add_ps(acc[r][v], bb), act));
  }
}

using SweepFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t, int64_t, float*, int64_t, int,
                         const float*, int);

template <int MR>
SweepFn sweep_for(int nv) {
  static const SweepFn f[kSweepVectors] = {&sweep<MR, 1>, &sweep<MR, 2>, &sweep<MR, 3>, &sweep<MR, 4>,
                                           &sweep<MR, 5>, &sweep<MR, 6>, &sweep<MR, 7>, &sweep<MR, 8>};
  return f[nv - 1];
}

}  // namespace

void sweep_f32_avx512(const float* a, int64_t sam, int64_t sak, const float* b, int64_t ldb, int64_t K, float* c,
                      int64_t ldc, int rows, int N, const float* bias, int act) {
  const int nv = (N + 15) / 16;
  SweepFn f = rows == 1 ? sweep_for<1>(nv) : rows == 2 ? sweep_for<2>(nv) : sweep_for<3>(nv);
  f(a, sam, sak, b, ldb, K, c, ldc, N, bias, act);
}

void tile_direct_f32_avx512(const float* a, int64_t sam, int64_t sak, const float* b, int64_t ldb, int64_t K,
                            float* c, int64_t ldc, int rows, int nc, const float* bias, int act) {
  run_tile<true>(a, sam, sak, b, ldb, K, c, ldc, rows, nc, true, true, bias, act);
}

}  // namespace dense
}  // namespace fastdl
