// Dense (Affine) layers as a blocked GEMM with the bias and the activation in its epilogue:
// C = act(A @ B + bias), float32, on fastdl's threads.
//
// Layout: B is packed, kKC rows and kNR columns at a time, into a zero-padded panel that
// stays in L1; a tile of kMR rows of C by one panel lives in registers (24 accumulators)
// while A is read by broadcasts, so A is never packed and may be transposed for free.
// Every element of C is summed over k in the same order whatever the thread count.
#pragma once

#include <cstdint>

namespace fastdl {
namespace dense {

enum Act : int { kNone = 0, kRelu = 1, kSigmoid = 2 };

constexpr int kMR = 12;      // rows of C per tile
constexpr int kNR = 32;      // columns of C per panel (two AVX-512 vectors)
constexpr int64_t kKC = 256;  // rows of B per packed panel (32 KiB)
constexpr int64_t kDirectRows = 2 * kMR;  // up to this many rows, B is read in place (not packed)
constexpr int kSweepRows = 3, kSweepVectors = 8;  // see sweep_f32_avx512
// Row tiles per work item at most (dispatch.cpp): their rows of A for one kKC piece (12 KiB a
// tile) stay in L2.
constexpr int64_t kMaxTiles = 20;
constexpr int64_t kMaxRows = kMaxTiles * kMR;

// Whether this CPU runs the SIMD kernel (AVX-512); if not, callers use BLAS.
bool available();

// C (M, N), row stride ldc, = act(A @ B + bias).
//   A (M, K): element (m, k) at a[m * sam + k * sak] (x: sam = K, sak = 1; x^T: sam = 1, sak = M).
//   B (K, N): element (k, n) at b[k * ldb + n], or at b[n * ldb + k] when b_trans.
//   bias (N,) or nullptr; act one of Act.  K == 0 gives act(bias) (zeros without bias).
// The bias is added once the sum over k is complete, as NumPy's `x @ W` then `+= b`.
void gemm_f32(const float* a, int64_t sam, int64_t sak, const float* b, int64_t ldb, bool b_trans,
              const float* bias, float* c, int64_t ldc, int64_t M, int64_t N, int64_t K, int act);

// SIMD pieces (kernels_avx512.cpp).
// p[k][0..kNR) = B(k0 + k, n0 + j) for k < kc, j < nc; zero for j >= nc.
void pack_b_f32_avx512(const float* b, int64_t ldb, bool b_trans, int64_t k0, int64_t kc, int64_t n0,
                       int64_t nc, float* p);
// C[0..rows) x [0..nc) (rows <= kMR, nc <= kNR) += A[0..rows) x [0..kc) @ p; `first`
// starts from zero instead of C, `last` then adds bias (or not, if nullptr) and applies act.
void tile_f32_avx512(const float* a, int64_t sam, int64_t sak, const float* p, int64_t kc, float* c,
                     int64_t ldc, int rows, int nc, bool first, bool last, const float* bias, int act);

// A last panel of at most kRemCols columns: a 16-lane tile would spend 16 lanes on each of them.
constexpr int kRemCols = 8;
// Floats of scratch rem_f32_avx512 needs.
constexpr int64_t kRemScratch = kRemCols * (kKC + 16) + kRemCols * (kMaxRows + 16);

// C[0..rows) x [0..nc) (nc <= kRemCols, rows <= kMaxRows) += A[0..rows) x [k0, k0 + kc) @
// B[k0.., n0..n0 + nc): the last few columns of C without lanes to spare.  With A's rows
// contiguous (sak == 1) each element is a dot product along k (B's columns copied contiguous
// first); else (sam == 1: A^T, dW = x^T dout) vectors run along A's columns.  first, last,
// bias (at the nc columns), act as tile_f32_avx512; scratch holds kRemScratch floats, 64-byte
// aligned.  The sums run in another order than the tiles' (fixed: no thread count changes it).
void rem_f32_avx512(const float* a, int64_t sam, int64_t sak, const float* b, int64_t ldb, bool b_trans,
                    int64_t k0, int64_t kc, int64_t n0, int nc, float* c, int64_t ldc, int64_t rows, bool first,
                    bool last, const float* bias, int act, float* scratch);

// The same tile over the whole reduction with B (K, N) read in place, row stride ldb, from
// its column 0 (nc <= kNR columns): for a few rows, where packing B would cost more than the
// product.
void tile_direct_f32_avx512(const float* a, int64_t sam, int64_t sak, const float* b, int64_t ldb, int64_t K,
                            float* c, int64_t ldc, int rows, int nc, const float* bias, int act);

// C (rows <= kSweepRows, N <= 16 * kSweepVectors) = act(A @ B + bias) in one pass over B's
// rows (K of them, row stride ldb): a batch of one to three samples, where B (a weight
// matrix, 1.7 MB for SimpleConvNet's first affine layer) is read once, a row at a time.
void sweep_f32_avx512(const float* a, int64_t sam, int64_t sak, const float* b, int64_t ldb, int64_t K, float* c,
                      int64_t ldc, int rows, int N, const float* bias, int act);

}  // namespace dense
}  // namespace fastdl
