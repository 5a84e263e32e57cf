// The dense GEMM's loops and threads (see dense.h): portable code around the AVX-512 pieces.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <new>

#include "dense.h"
#include "support/cpu.h"
#include "support/parallel.h"

namespace fastdl {
namespace dense {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

// Per thread: a packed panel of B (kKC x kNR floats), 64-byte aligned (read with aligned
// loads), then rem_f32_avx512's scratch.
constexpr int64_t kThreadScratch = kKC * kNR + kRemScratch;
std::unique_ptr<float, FreeDeleter> panels(int nt) {
  void* p = std::aligned_alloc(64, sizeof(float) * kThreadScratch * static_cast<size_t>(nt));
  if (!p) throw std::bad_alloc();
  return std::unique_ptr<float, FreeDeleter>(static_cast<float*>(p));
}

// Below this many multiply-adds the GEMM runs on the calling thread: waking the second
// thread and splitting the work cost more than they saved up to about the size of the
// MLPs' 100x784x100 layers (2 threads: two_layer_net's step 0.35 -> 0.46 ms with 2^20).
constexpr int64_t kThreadGrain = int64_t{1} << 24;

// Prefetch for writing (PREFETCHW where built for it) the lines of rows [0, min(kMR, rows)) x [0, nc) of C
// (row stride ldc): the next tile's, so that their fetch for ownership overlaps this tile's FMAs.
void prefetch_rows_for_write(const float* c, int64_t ldc, int64_t rows, int64_t nc) {
  for (int64_t r = 0; r < std::min<int64_t>(kMR, rows); ++r) {
    const char* first = reinterpret_cast<const char*>(c + r * ldc);
    const char* end = first + nc * static_cast<int64_t>(sizeof(float));
    for (const char* q = first; q < end; q += 64) __builtin_prefetch(q, 1, 3);
    __builtin_prefetch(end - 1, 1, 3);
  }
}

// C = act(bias) broadcast over M rows (K == 0).
void bias_only(const float* bias, float* c, int64_t ldc, int64_t M, int64_t N, int act) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      float v = bias ? bias[n] : 0.0f;
      if (act == kRelu) v = v > 0.0f || v != v ? v : 0.0f;
      if (act == kSigmoid) v = 1.0f / (1.0f + std::exp(-v));
      c[m * ldc + n] = v;
    }
}

struct Split {
  int64_t tiles, panels;  // row tiles and panels per work item
};

// The work items' shape.  Each item packs its panels of B once per tile group and reads its
// rows of A once per panel group, so the traffic is (tile groups) x K x N + (panel groups) x
// M x K: the cheapest split into enough items for nt threads (3 per thread, for balance),
// with at most kMaxTiles tiles an item (their rows of A stay in L2 across its panels).
// Example: dx = dout W^T of SimpleConvNet's affine layer (M 100, N 4320) splits the panels
// alone; an even split of both re-packed W (1.7 MB) once per tile group.
Split split(int64_t ntile, int64_t npanel, int64_t M, int64_t N, int nt) {
  const int64_t want = nt > 1 ? 3 * int64_t{nt} : 1;
  Split best{std::min(ntile, kMaxTiles), npanel};
  double best_cost = -1;
  for (int64_t ntg = ceil_div(ntile, kMaxTiles); ntg <= ntile; ++ntg) {
    const int64_t tg = ceil_div(ntile, ntg), real_ntg = ceil_div(ntile, tg);
    const int64_t pg = ceil_div(npanel, std::min(npanel, ceil_div(want, real_ntg)));
    const int64_t real_npg = ceil_div(npanel, pg);
    if (real_ntg * real_npg < std::min<int64_t>(nt, ntile * npanel)) continue;
    const double cost = static_cast<double>(real_ntg) * N + static_cast<double>(real_npg) * M;
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best = {tg, pg};
    }
    if (real_ntg * real_npg >= want && real_npg == 1) break;  // more tile groups only cost more
  }
  return best;
}

}  // namespace

bool available() { return cpu_level() == CpuLevel::AVX512; }

void gemm_f32(const float* a, int64_t sam, int64_t sak, const float* b, int64_t ldb, bool b_trans,
              const float* bias, float* c, int64_t ldc, int64_t M, int64_t N, int64_t K, int act) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    bias_only(bias, c, ldc, M, N, act);
    return;
  }
  if (!b_trans && M <= kSweepRows && N <= 16 * kSweepVectors) {  // one to three samples
    sweep_f32_avx512(a, sam, sak, b, ldb, K, c, ldc, static_cast<int>(M), static_cast<int>(N), bias, act);
    return;
  }
  if (!b_trans && M <= kDirectRows) {
    // a few samples: B read in place, on this thread
    for (int64_t n0 = 0; n0 < N; n0 += kNR)
      for (int64_t m0 = 0; m0 < M; m0 += kMR)
        tile_direct_f32_avx512(a + m0 * sam, sam, sak, b + n0, ldb, K, c + m0 * ldc + n0, ldc,
                               static_cast<int>(std::min<int64_t>(kMR, M - m0)),
                               static_cast<int>(std::min<int64_t>(kNR, N - n0)), bias ? bias + n0 : nullptr, act);
    return;
  }
  // Work items: (group of row tiles) x (group of panels of kNR columns).  An item walks k
  // kKC rows at a time; for each panel it packs that piece of B (then in L1) and runs its row
  // tiles over it, so the item's rows of A for this piece stay in L2 across its panels.
  const int64_t npanel = ceil_div(N, kNR), ntile = ceil_div(M, kMR);
  const int nt = M * N * K >= kThreadGrain ? num_threads() : 1;
  const Split sp = split(ntile, npanel, M, N, nt);
  const int64_t tg = sp.tiles, pg = sp.panels;
  const int64_t npg = ceil_div(npanel, pg), nitem = ceil_div(ntile, tg) * npg;
  const int threads = static_cast<int>(std::min<int64_t>(nt, nitem));
  auto scratch = panels(threads);
  // A last panel of a few columns (N = 100: 3 panels and 4 columns) by rem_f32_avx512, where A
  // is contiguous along k or along m (every call of the dense layers); a last panel of 17 to
  // 24 columns as a 16-column tile and those few (N = 50, the book's hidden layer: 32 + 16 + 2
  // columns instead of a panel whose second vector used 2 lanes of 16).
  const int64_t last_cols = N % kNR;
  const bool rem_ok = sak == 1 || sam == 1;
  const int64_t rem_cols = !rem_ok || last_cols == 0 ? 0
                           : last_cols <= kRemCols ? last_cols
                           : last_cols > 16 && last_cols - 16 <= kRemCols ? last_cols - 16
                                                                          : 0;
  // Rows of C a page or more apart (dx = dout W^T: 4320 floats) are not prefetched by the
  // hardware: the next tile's rows are fetched for writing while this one computes
  // (SimpleConvNet's dx 0.68 -> 0.645 ms on one core).
  const bool far_rows = ldc * static_cast<int64_t>(sizeof(float)) >= 4096;
  for_items(nitem, threads, true, [&](int64_t item, int t) {
    float* p = scratch.get() + static_cast<size_t>(t) * kThreadScratch;
    const int64_t t0 = (item / npg) * tg, t1 = std::min(ntile, t0 + tg);
    const int64_t p0 = (item % npg) * pg, p1 = std::min(npanel, p0 + pg);
    for (int64_t k0 = 0; k0 < K; k0 += kKC) {
      const int64_t kc = std::min(kKC, K - k0);
      const bool first = k0 == 0, last = k0 + kc == K;
      for (int64_t panel = p0; panel < p1; ++panel) {
        const int64_t n0 = panel * kNR;
        int64_t nc = std::min<int64_t>(kNR, N - n0);
        if (rem_cols && panel == npanel - 1) {
          const int64_t m0 = t0 * kMR, m1 = std::min(M, t1 * kMR), r0 = n0 + nc - rem_cols;
          rem_f32_avx512(a + m0 * sam, sam, sak, b, ldb, b_trans, k0, kc, r0, static_cast<int>(rem_cols),
                         c + m0 * ldc + r0, ldc, m1 - m0, first, last, bias ? bias + r0 : nullptr, act, p + kKC * kNR);
          nc -= rem_cols;  // the panel's first 16 columns, if any, by the tiles below
          if (nc == 0) continue;
        }
        pack_b_f32_avx512(b, ldb, b_trans, k0, kc, n0, nc, p);
        for (int64_t tile = t0; tile < t1; ++tile) {
          const int64_t m0 = tile * kMR;
          const int rows = static_cast<int>(std::min<int64_t>(kMR, M - m0));
          if (far_rows && last && tile + 1 < t1) prefetch_rows_for_write(c + (m0 + kMR) * ldc + n0, ldc, M - m0 - kMR, nc);
          tile_f32_avx512(a + m0 * sam + k0 * sak, sam, sak, p, kc, c + m0 * ldc + n0, ldc, rows,
                          static_cast<int>(nc), first, last, bias ? bias + n0 : nullptr, act);
        }
      }
    }
  });
}

}  // namespace dense
}  // namespace fastdl
