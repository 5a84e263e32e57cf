// Shared by the portable convolution drivers (forward.cpp, backward_data.cpp,
// backward_weights.cpp): the kernel table in use, the choice of kernel family, the split of
// the batch into groups of samples and the runs of valid taps.  Portable code only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "conv.h"
#include "kernel_table.h"
#include "support/parallel.h"

namespace fastdl {
namespace conv {

// The table for the CPU's SIMD level (dispatch.cpp), chosen once.
template <class T>
const Kernels<T>& kernels();

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Each output pixel's taps as runs of consecutive (A step, B row) pairs.
struct Runs {
  std::vector<int64_t> a, b, start{0};
  std::vector<int32_t> len;

  void add(int64_t ra, int64_t rb, int64_t n) {
    if (n <= 0) return;
    if (static_cast<int64_t>(len.size()) > start.back() && a.back() + len.back() == ra &&
        b.back() + len.back() == rb) {
      len.back() += static_cast<int32_t>(n);
      return;
    }
    a.push_back(ra);
    b.push_back(rb);
    len.push_back(static_cast<int32_t>(n));
  }
  void end_pixel() { start.push_back(static_cast<int64_t>(len.size())); }
};

// Samples split into groups of at most mmax, a multiple of the thread count when there are
// enough samples, sizes differing by at most one.  Thread t runs groups t, t + nt, ...
std::vector<std::pair<int64_t, int>> make_groups(int64_t N, int mmax, int nt);

// The flat (pixel-lane) kernels need stride 1; they win when the channel-lane tiles would
// have a single vector of output channels (one broadcast per FMA), a short reduction
// (where transposing the results costs as much as computing them), or when the SIMD level
// has a direct kernel for the job (same_direct: a "same" layer with few enough output
// channels, see Kernels::same_nout).  FASTDL_CONV=tile|flat overrides (dispatch.cpp).
bool use_flat(int64_t stride, int64_t nout, int64_t reduction, int lanes, bool same_direct);

// Whether a stride-1 layer from an n x m image to an n x m image with a kh x kw window and
// this padding ("same") has at most K.same_nout output channels.
template <class T>
bool same_direct(const Kernels<T>& K, int64_t n, int64_t m, int64_t on, int64_t om,
                 int64_t pad, int64_t kh, int64_t kw, int64_t nout) {
  return n == on && m == om && pad < kh && pad < kw && nout <= K.same_nout;
}

// How the forward runs geometry g: on the flat kernels or the tiles, and whether on the flat
// kernels' direct "same" kernel.  ForwardPlan decides by it, and so do conv_pool.cpp's chunk
// size and its choice of pool.
struct ForwardChoice {
  bool flat, same;
};
template <class T>
ForwardChoice forward_choice(const Kernels<T>& K, const Geometry& g) {
  const bool same = same_direct(K, g.H, g.W, g.OH, g.OW, g.pad, g.kh, g.kw, g.FN);
  return {use_flat(g.stride, g.FN, g.C * g.kh * g.kw, K.lanes, same), same};
}

// Output vectors per tile: the fewest tiles of at most vmax vectors, evenly sized.
template <class T>
int vchunk_of(const Kernels<T>& k, int64_t nv) {
  return static_cast<int>(ceil_div(nv, ceil_div(nv, k.vmax)));
}

// A std::vector allocator of 64-byte aligned blocks: packed weights read with whole-vector
// loads at multiples of 64 bytes then never straddle two cache lines.
template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <class U>
  bool operator==(const Aligned64<U>&) const { return true; }
  template <class U>
  bool operator!=(const Aligned64<U>&) const { return false; }
};

template <class T>
using AlignedVector = std::vector<T, Aligned64<T>>;

// Per-thread scratch: nt slices of at least `per` elements (every kernel writes before
// reading), each slice 64-byte aligned, so that a layout of whole vectors inside it is
// read without loads that straddle two cache lines.
template <class T>
class Scratch {
 public:
  Scratch(int64_t per, int nt)
      : per_((per * int64_t{sizeof(T)} + 63) / 64 * 64 / int64_t{sizeof(T)}),
        n_(static_cast<size_t>(per_ * nt)), p_(Aligned64<T>().allocate(n_)) {}
  ~Scratch() { Aligned64<T>().deallocate(p_, n_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* at(int t) const { return p_ + per_ * t; }

 private:
  int64_t per_;
  size_t n_;
  T* p_;
};

template <class T>
void run_tiles(const Kernels<T>& K, const TileJob<T>& job, int64_t N) {
  const int mmax = K.mmax[job.vchunk];
  auto groups = make_groups(N, mmax, num_threads());
  if (groups.empty()) return;
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), groups.size()));
  const int64_t per = tile_scratch(job, mmax, K.lanes);
  Scratch<T> scratch(per, nt);
  for_items(static_cast<int64_t>(groups.size()), nt, true, [&](int64_t g, int t) {
    K.tile_group(job, groups[g].first, groups[g].second, scratch.at(t));
  });
}

// Vectors of flat outputs a plane takes: rows of OW + kw - 1 (padded planes) or of OW
// (shifted copies), the last row cut at OW.
inline int64_t flat_vectors(int64_t OH, int64_t OW, int64_t kw, int lanes, bool shifted) {
  return ceil_div((OH - 1) * (shifted ? OW : OW + kw - 1) + OW, lanes);
}

// Fills the plane geometry of a flat job (src dims, ph, pw, kh, kw, OH, OW set) and its tap
// offsets: padded planes, or kw shifted copies of each (FlatJob).
template <class T>
void flat_geometry(FlatJob<T>& j, std::vector<int64_t>& off, int lanes, bool shifted = false) {
  j.shifted = shifted;
  j.Hp = j.OH + j.kh - 1;
  j.Wp = shifted ? j.OW : j.OW + j.kw - 1;
  j.nvec = flat_vectors(j.OH, j.OW, j.kw, lanes, shifted);
  // whole vectors, so that every plane starts as aligned as the first
  const int64_t reach = j.nvec * lanes + (j.kh - 1) * j.Wp + (shifted ? 0 : j.kw - 1);
  j.lp = ceil_div(std::max(j.Hp * j.Wp, reach), lanes) * lanes;
  off.clear();
  for (int64_t c = 0; c < j.cin; ++c)
    for (int64_t ky = 0; ky < j.kh; ++ky)
      for (int64_t kx = 0; kx < j.kw; ++kx)
        off.push_back(shifted ? (kx * j.cin + c) * j.lp + ky * j.Wp : c * j.lp + ky * j.Wp + kx);
  j.off = off.data();
}

template <class T>
void run_flat(const Kernels<T>& K, const FlatJob<T>& job, int64_t N) {
  if (N == 0) return;
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), N));
  const int64_t per = flat_scratch(job, K.lanes);
  Scratch<T> scratch(per, nt);
  // Two samples per item: fine-grained enough to balance, coarse enough to amortise.
  for_items((N + 1) / 2, nt, true, [&](int64_t i, int t) {
    K.flat_conv(job, 2 * i, std::min<int64_t>(N, 2 * i + 2), scratch.at(t));
  });
}

// A forward convolution set up once (packed weights, the taps of every output pixel) and run
// on any number of batches of the geometry's sample shape: conv_relu_pool_forward runs it on
// each chunk of samples.  forward() is a plan run once.  Not copyable: the job points into it.
template <class T>
class ForwardPlan {
 public:
  ForwardPlan(const Geometry& g, const T* w, const T* bias, bool relu);
  ForwardPlan(const ForwardPlan&) = delete;
  ForwardPlan& operator=(const ForwardPlan&) = delete;
  // y (N, FN, OH, OW) = the convolution of x (N, C, H, W), as forward().
  void run(const T* x, T* y, int64_t N) const;
  // Whether run_sink applies: the flat kernels, without their direct "same" kernel.
  bool sinks() const { return flat_ && !same_; }
  // The flat kernels' sums of each sample handed to sink (FlatJob::sink) instead of stored.
  void run_sink(const T* x, int64_t N, void (*sink)(const void*, int64_t, const T*, int64_t), const void* ctx) const;
  int64_t row_stride() const { return flat_job_.Wp; }

 private:
  const Kernels<T>& K_;
  bool flat_ = false, same_ = false;
  AlignedVector<T> wt_;       // flat: wt[k * FN + fn]; tiles: the packed B
  std::vector<int64_t> off_;  // flat: tap offsets
  Runs runs_;                 // tiles: each output pixel's taps
  FlatJob<T> flat_job_{};
  TileJob<T> tile_job_{};
};

}  // namespace conv
}  // namespace fastdl
