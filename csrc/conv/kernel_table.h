// Convolution kernel table: the jobs the portable drivers (forward.cpp, backward_data.cpp,
// backward_weights.cpp) hand to the per-CPU kernels (kernels_scalar.cpp, kernels_avx2.cpp,
// kernels_avx512.cpp, all built from kernels.h), and the function table those fill.
//
// Plain structs and function pointers only: this header is included by files compiled
// with ISA flags (see common.h for why they must not instantiate standard templates).
//
// The work is split into groups of m samples (m <= a register-tile height).  A group's
// input is packed "sample-innermost", A[(q * cin + c) * m + i] for pixel q, channel c and
// sample i, so one output pixel of all m samples is a register tile of m rows (broadcasts
// of A) by up to vmax vectors of output channels (loads of the packed weights B).  All m
// samples share the pixel's set of valid taps, so padding taps are skipped exactly: each
// output pixel lists its taps as "runs" of consecutive (A step, B row) pairs.
#pragma once

#include <cstdint>

namespace fastdl {
namespace conv {

// A gather convolution: forward (src = x, B = weights) or data gradient (src = dy,
// B = flipped weights).  Output pixel p of sample n sums, over runs r of pix_start[p] ..
// pix_start[p+1] and l < run_len[r], A-step run_a[r] + l times B row run_b[r] + l.
template <class T>
struct TileJob {
  const T* src;           // (N, cin, qin) samples
  int64_t src_stride;     // elements between samples of src
  int64_t cin, qin;       // channels and pixels of one src sample
  const T* B;             // packed weights: rows of np values (np = lanes * vectors)
  int64_t np;             // padded output channels
  int64_t nout;           // real output channels (<= np)
  const int64_t* run_a;   // per run: first A step (pixel * cin + channel)
  const int64_t* run_b;   // per run: first B row
  const int32_t* run_len; // per run: number of steps
  const int64_t* pix_start;  // runs of output pixel p: pix_start[p] .. pix_start[p+1]
  int64_t pout;           // output pixels per sample
  T* dst;                 // (N, nout, pout)
  int64_t dst_stride;     // elements between samples of dst
  const T* bias;          // (nout,) or nullptr
  int vchunk;             // output vectors per register tile
  bool relu;              // store max(result + bias, 0) (NaN kept), as relu_forward
  const T* gate;          // laid out as src, or nullptr: src is read as src * (gate > 0)
};

// Weight gradient of one group: dwt[((ky*kw + kx) * C + c) * np + fn] += sum over the
// group's samples and output pixels of x * dy (valid taps only).
template <class T>
struct DwJob {
  const T* x;                   // (N, C, H, W)
  const T* dy;                  // (N, FN, OH, OW)
  int64_t C, H, W, FN, OH, OW;
  int64_t kh, kw, stride, pad;
  int64_t np;                   // FN padded to whole vectors
  int vchunk;                   // fn vectors per register tile
  const T* gate;                // laid out as dy, or nullptr: dy is read as dy * (gate > 0)
};

// Direct stride-1 convolution with pixels in the vector lanes ("flat" layout): one sample's
// input is copied, zero-padded, into planes of Hp x Wp (Hp = OH + kh - 1, Wp = OW + kw - 1)
// with xpad[yy][xx] = src[yy - ph][xx - pw]; output f = oy * Wp + ox reads xpad at
// f + ky * Wp + kx, so a run of outputs is a run of shifted vector loads (outputs with
// ox >= OW are computed and dropped).  Used where output channels are few or the
// reduction is short, which starve the channel-lane tiles above.
// Shifted (FlatJob::shifted): kw copies of each padded plane instead, copy kx shifted left by
// kx columns and cropped to OW (Wp == OW), xs[(kx * cin + c) * lp + yy * OW + ox] =
// xpad[c][yy][ox + kx]; output f = oy * OW + ox reads copy kx at f + ky * OW, and no lane
// is spent on the kw - 1 columns a padded row has past OW (SimpleConvNet's 5 x 5 on 28 x 28:
// 36 vectors a plane instead of 42).
template <class T>
struct FlatJob {
  const T* src;            // (N, cin, H, W)
  int64_t src_stride, cin, H, W;
  int64_t ph, pw;          // input offset in the padded plane (negative crops)
  int64_t kh, kw, OH, OW, Hp, Wp;
  int64_t lp;              // elements per padded plane (with slack for the last vector)
  int64_t nvec;            // vectors of flat outputs: ceil(((OH-1)*Wp + OW) / lanes)
  const T* wt;             // (cin*kh*kw, nout): wt[k * nout + o]
  const int64_t* off;      // per tap k = (c, ky, kx): c * lp + ky * Wp + kx (shifted: (kx * cin + c) * lp + ky * OW)
  int64_t nout;
  T* dst;                  // (N, nout, OH, OW)
  int64_t dst_stride;
  const T* bias;           // (nout,) or nullptr
  bool relu;               // store max(result + bias, 0) (NaN kept), as relu_forward
  const T* gate;           // laid out as src, or nullptr: src is read as src * (gate > 0)
  // If set, dst is not written: sink(sink_ctx, n, obuf, ld) gets sample n's sums without
  // the bias, channel o's plane at obuf + o * ld with rows Wp apart (OW of each real).
  void (*sink)(const void* ctx, int64_t n, const T* obuf, int64_t ld);
  const void* sink_ctx;
  bool shifted;            // the input as kw shifted copies of each plane (above); Wp == OW
};

// Weight gradient for stride 1 with pixels in the vector lanes: per sample,
// dwv[(fn * K + k) * lanes + lane] += dy[fn][f] * xs[off[k] + f] over the pixels f of a plane
// of dy as the tiles read it (lanes summed by the caller), and db[fn] += sum of dy.  Two
// layouts for xs and dy:
// - shifted: kw copies of the input, each shifted by kx columns and cropped to OW columns,
//   xs[(kx * cin + c) * lx + yy * OW + ox] = x[c][yy - ph][ox + kx - pw] (zero outside x,
//   yy < OH + kh - 1), so tap k = (c, ky, kx) of pixel f = oy * OW + ox is at
//   off[k] = (kx * cin + c) * lx + ky * OW and dy is read in place (ld = OH * OW).
// - padded: one copy of the input padded to planes of (OH + kh - 1) x Wp (Wp = OW + kw - 1;
//   as FlatJob), off[k] = c * lx + ky * Wp + kx, and dy copied into rows of Wp with zeros
//   in the extra columns (ld per plane).
// Shifted writes kw * cin planes and no dy; padded cin + FN planes, and reads less input
// per tile when cin is large.
template <class T>
struct FlatDwJob {
  const T* x;              // (N, cin, H, W)
  const T* dy;             // (N, FN, OH, OW)
  int64_t cin, H, W, FN, OH, OW, kh, kw, ph, pw;
  bool shifted;            // layout, as above
  int64_t lx;              // elements per input plane copy
  int64_t Wp;              // padded: row stride of both copies
  int64_t ld;              // elements between dy planes as the tiles read them
  int64_t nfull;           // whole vectors per dy plane
  int rem;                 // lanes of a last, partial vector (shifted only)
  const int64_t* off;      // per tap k = (c, ky, kx), as above
  // Laid out as dy, or nullptr: dy is read as dy * (gate > 0) (the backward of a ReLU whose
  // output is the gate), copied per sample into the scratch (after the input's copies).
  const T* gate;
};

// Gradients of a convolution followed by a ReLU and a max pool (conv_pool.cpp), from the
// pool's gradient dy and argmax alone: the gradient of the convolution's output is dy at
// each window's argmax and 0 elsewhere (3 of 4 cells for 2 x 2 windows).  For each pooled
// output j whose argmax a is not -1 (no gradient passes the ReLU at -1):
//   dW[fn] += dy[fn][j] * (the input window of conv output pixel a),
//   (the window of a in dx) += dy[fn][j] * W[fn].
// One sample's input is copied, zero-padded, channel-innermost:
// xs[(yy * Wp + xx) * cin + c] = x[c][yy - pad][xx - pad] (H + 2 pad rows of Wp = W + 2 pad
// pixels, then slack), so each of a window's kh rows is one run of kw * cin elements, read
// as `nvr` vectors; dx is summed in a copy laid out the same way.  dwp[(fn * kh + ky) * nvr *
// lanes + kx * cin + c] accumulates the weight gradient (lanes past kw * cin hold junk the
// caller ignores).
template <class T>
struct SparseJob {
  const T* x;              // (N, cin, H, W)
  const T* dy;             // (N, FN, P): the pooled gradient
  const int64_t* argmax;   // (N, FN, P): conv output pixel oy * OW + ox, or -1; or nullptr and:
  const int8_t* cell;      // (N, FN, P): the argmax cell of a 2 x 2 window (pool.h), or -1
  const int32_t* base;     // with cell: base[i] + cell_off[c] is window i's cell c's window in xs
  int32_t cell_off[16];    // [0, 4) used; 16 for a whole vector
  int64_t cin, H, W, FN, P, kh, kw, pad;
  int64_t npix;            // conv output pixels (OH * OW): argmax must be < npix
  int64_t Wp;              // pixels per row of the copy (W + 2 pad)
  int64_t nvr;             // vectors per window row: ceil(kw * cin / lanes)
  int64_t xlen;            // elements of the copy, slack included
  const int32_t* off1;     // off1[a + 1]: first element of pixel a's window in xs (off1[0]: any)
  const T* wr;             // wr[(fn * kh + ky) * nvr * lanes + kx * cin + c] = W[fn][c][ky][kx], 0 past kw * cin
  T* dx;                   // (N, cin, H, W), or nullptr: no data gradient
  int64_t Wq;              // sparse_backward_narrow: window columns of its pair copy (the
                           // offsets then index that copy: sparse_pair_offset)
};

// sparse_backward_narrow's copy of a sample: for every row y < Hp and window column x < Wq,
// 16 floats, the kSparseNarrowLanes elements of xs from (y, x) on and those of row y + 1
// (zeros past the last row).  Window (y, x)'s offset in it:
inline int64_t sparse_pair_offset(int64_t y, int64_t x, int64_t Wq) { return (y * Wq + x) * 16; }

// Entries past P that the lists of windows may be written with (whole vectors of them).
constexpr int64_t kSparseSlack = 16;

// Where sparse_backward's scratch holds what (in elements of T, 64-byte aligned): the list
// of one channel's window offsets (int32: xlen < 2^31, sparse_gradients checks) at 0, their dy
// at g, the input copy at xs, the copy of dx at dxs, the narrow kernel's pair copy at pairs;
// `size` in all.
struct SparseLayout {
  int64_t g, xs, dxs, pairs, size;
};

// Elements of the pair copy (0 unless job.Wq).
template <class T>
inline int64_t sparse_pairs_len(const SparseJob<T>& j) {
  return j.Wq ? (j.H + 2 * j.pad) * j.Wq * 16 : 0;
}

template <class T>
inline SparseLayout sparse_layout(const SparseJob<T>& j) {
  constexpr int64_t line = 64 / static_cast<int64_t>(sizeof(T));
  const auto up = [](int64_t n) { return (n + line - 1) / line * line; };
  SparseLayout l{};
  l.g = up((j.P + kSparseSlack) * 4 / static_cast<int64_t>(sizeof(T)) + 1);
  l.xs = l.g + up(j.P + kSparseSlack);
  l.dxs = l.xs + up(j.xlen);
  l.pairs = l.dxs + (j.dx ? up(j.xlen) : 0);
  l.size = l.pairs + up(sparse_pairs_len(j));
  return l;
}

constexpr int kSparseNarrowLanes = 8, kSparsePairRows = 8;

template <class T>
struct Kernels {
  int lanes;          // vector width in elements of T
  int vmax;           // most output vectors in one register tile
  int mmax[8];        // tallest tile (group size) for 1..vmax vectors
  // Most output channels for which flat_conv has a direct kernel for stride-1 "same"
  // layers (output size = input size); the driver then prefers it to the tiles.  0: none.
  int same_nout;
  // One group of m samples starting at sample n0; scratch holds tile_scratch() elements.
  void (*tile_group)(const TileJob<T>& job, int64_t n0, int m, T* scratch);
  // Adds the group's weight gradient to dwt (taps * C rows of np) and bias gradient to db;
  // scratch holds dw_scratch() elements.
  void (*dw_group)(const DwJob<T>& job, int64_t n0, int m, T* scratch, T* dwt, double* db);
  // Samples n0..n1-1 of a flat convolution; scratch holds flat_scratch() elements.
  void (*flat_conv)(const FlatJob<T>& job, int64_t n0, int64_t n1, T* scratch);
  // Samples n0..n1-1 of a flat weight gradient; scratch holds flat_dw_scratch() elements;
  // dwv holds FN * K * lanes partial sums, db FN.
  void (*flat_dw)(const FlatDwJob<T>& job, int64_t n0, int64_t n1, T* scratch, T* dwv, double* db);
  // Samples n0..n1-1 of the gradients from a max pool's argmax: dx (if job.dx) written,
  // dwp (FN * kh * nvr * lanes partial sums) and db (FN) added to; scratch holds
  // sparse_layout(job).size elements.  False (results then meaningless) if an argmax entry is
  // outside [-1, npix).
  bool (*sparse_backward)(const SparseJob<T>& job, int64_t n0, int64_t n1, T* scratch, T* dwp, double* db);
  // The weight gradient alone (no job.dx) for windows whose rows fit kSparseNarrowLanes
  // elements (kw * cin <= 8) and at most kSparsePairRows rows, two window rows to a vector
  // (job.Wq set, the offsets into the pair copy); nullptr where the SIMD level has none.
  bool (*sparse_backward_narrow)(const SparseJob<T>& job, int64_t n0, int64_t n1, T* scratch, T* dwp,
                                 double* db);
};

template <class T>
inline int64_t flat_scratch(const FlatJob<T>& j, int64_t lanes) {
  return (j.shifted ? j.kw : 1) * j.cin * j.lp + j.nout * j.nvec * lanes;
}

template <class T>
inline int64_t flat_dw_scratch(const FlatDwJob<T>& j) {
  return j.shifted ? j.kw * j.cin * j.lx + (j.gate ? j.FN * j.ld : 0) : j.cin * j.lx + j.FN * j.ld;
}

// Output pixels buffered per tile_group step: about 32 KiB of results, whole vectors.
inline int64_t tile_chunk(int64_t m, int64_t np, int64_t elem, int64_t lanes) {
  const int64_t c = 32768 / (m * np * elem) / lanes * lanes;
  return c < lanes ? lanes : c;
}

template <class T>
inline int64_t tile_scratch(const TileJob<T>& j, int m, int64_t lanes) {
  // tile_chunk(k, ...) * k * np for any group size k <= m stays below the second term.
  return j.qin * j.cin * m + 32768 / static_cast<int64_t>(sizeof(T)) + lanes * m * j.np;
}

template <class T>
inline int64_t dw_scratch(const DwJob<T>& j, int m) {
  return (j.H * j.W * j.C + j.OH * j.OW * j.np) * m;
}

void get_kernels_scalar(Kernels<float>* f, Kernels<double>* d);
void get_kernels_avx2(Kernels<float>* f, Kernels<double>* d);
void get_kernels_avx512(Kernels<float>* f, Kernels<double>* d);

}  // namespace conv
}  // namespace fastdl
