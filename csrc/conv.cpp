// Convolution driver: packs weights, lists each output pixel's valid taps, splits the batch
// into groups of samples across threads and calls the per-ISA kernels (conv_kernels.h).
#include "conv.h"

#include <pybind11/numpy.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "arrays.h"
#include "common.h"
#include "conv_kernels.h"
#include "cpu.h"

namespace fastdl {

namespace {

namespace py = pybind11;
using conv::DwJob;
using conv::FlatDwJob;
using conv::FlatJob;
using conv::Kernels;
using conv::TileJob;

template <class T>
using carray = py::array_t<T, py::array::c_style>;

struct KernelSet {
  Kernels<float> f;
  Kernels<double> d;
};

const KernelSet& kernel_set() {
  static const KernelSet ks = [] {
    KernelSet k;
    switch (cpu_level()) {
      case CpuLevel::AVX512: conv::get_kernels_avx512(&k.f, &k.d); break;
      case CpuLevel::AVX2: conv::get_kernels_avx2(&k.f, &k.d); break;
      default: conv::get_kernels_scalar(&k.f, &k.d); break;
    }
    return k;
  }();
  return ks;
}

template <class T>
const Kernels<T>& kernels();
template <>
const Kernels<float>& kernels<float>() { return kernel_set().f; }
template <>
const Kernels<double>& kernels<double>() { return kernel_set().d; }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

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
std::vector<std::pair<int64_t, int>> make_groups(int64_t N, int mmax, int nt) {
  std::vector<std::pair<int64_t, int>> g;
  if (N <= 0) return g;
  int64_t ng = ceil_div(N, mmax);
  if (nt > 1) ng = std::min<int64_t>(ceil_div(ng, nt) * nt, N);
  const int64_t base = N / ng, rem = N % ng;
  int64_t n0 = 0;
  for (int64_t i = 0; i < ng; ++i) {
    const int m = static_cast<int>(base + (i < rem ? 1 : 0));
    g.emplace_back(n0, m);
    n0 += m;
  }
  return g;
}

// Runs f(item, thread index) for every item in [0, n) on nt threads.  Static: thread t takes
// items t, t + nt, ... (a fixed assignment, for per-thread partial sums that must not depend
// on timing).  Dynamic: threads take the next free item (results that are written once per
// item; keeps both cores busy when one of them is shared with another process).
template <class F>
void for_items(int64_t n, int nt, bool dynamic, F&& f) {
#ifdef FASTDL_HAVE_OPENMP
  if (nt > 1 && n > 1 && fastdl::forked_child()) {
    if (!fastdl::t_in_parallel) {  // a forked child: the static assignment on threads of its own
      fastdl::on_own_threads(nt, [&](int t) {
        for (int64_t i = t; i < n; i += nt) f(i, t);
      });
      return;
    }
  } else if (nt > 1 && n > 1 && !omp_in_parallel()) {
    fastdl::g_omp_started.store(true, std::memory_order_relaxed);
    if (dynamic) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
      for (int64_t i = 0; i < n; ++i) f(i, omp_get_thread_num());
    } else {
#pragma omp parallel num_threads(nt)
      {
        const int t = omp_get_thread_num(), k = omp_get_num_threads();
        for (int64_t i = t; i < n; i += k) f(i, t);
      }
    }
    return;
  }
#endif
  (void)dynamic;
  for (int64_t i = 0; i < n; ++i) f(i, 0);
}

// Output vectors per tile: the fewest tiles of at most vmax vectors, evenly sized.
template <class T>
int vchunk_of(const Kernels<T>& k, int64_t nv) {
  return static_cast<int>(ceil_div(nv, ceil_div(nv, k.vmax)));
}

template <class T>
void run_tiles(const Kernels<T>& K, const TileJob<T>& job, int64_t N) {
  const int mmax = K.mmax[job.vchunk];
  auto groups = make_groups(N, mmax, num_threads());
  if (groups.empty()) return;
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), groups.size()));
  const int64_t per = conv::tile_scratch(job, mmax, K.lanes);
  std::unique_ptr<T[]> scratch(new T[static_cast<size_t>(per * nt)]);  // every kernel writes before reading
  for_items(static_cast<int64_t>(groups.size()), nt, true, [&](int64_t g, int t) {
    K.tile_group(job, groups[g].first, groups[g].second, scratch.get() + per * t);
  });
}

// FASTDL_CONV=tile or FASTDL_CONV=flat forces one kernel family where both apply (testing).
enum class Path { Auto, Tile, Flat };

Path forced_path() {
  static const Path p = [] {
    const char* e = std::getenv("FASTDL_CONV");
    if (e && std::strcmp(e, "tile") == 0) return Path::Tile;
    if (e && std::strcmp(e, "flat") == 0) return Path::Flat;
    return Path::Auto;
  }();
  return p;
}

// The flat (pixel-lane) kernels need stride 1; they win when the channel-lane tiles would
// have a single vector of output channels (one broadcast per FMA), a short reduction
// (where transposing the results costs as much as computing them), or when the SIMD level
// has a direct kernel for the job (same_direct: a "same" layer with few enough output
// channels, see Kernels::same_nout).
bool use_flat(int64_t stride, int64_t nout, int64_t reduction, int lanes, bool same_direct) {
  if (stride != 1) return false;
  if (forced_path() != Path::Auto) return forced_path() == Path::Flat;
  return nout <= lanes || reduction <= 32 || same_direct;
}

// Whether a stride-1 layer from an n x m image to an n x m image with a kh x kw window and
// this padding ("same") has at most K.same_nout output channels.
template <class T>
bool same_direct(const Kernels<T>& K, int64_t n, int64_t m, int64_t on, int64_t om,
                 int64_t pad, int64_t kh, int64_t kw, int64_t nout) {
  return n == on && m == om && pad < kh && pad < kw && nout <= K.same_nout;
}

// Fills the padded-plane geometry of a flat job (src dims, ph, pw, kh, kw, OH, OW set) and
// its tap offsets.
template <class T>
void flat_geometry(FlatJob<T>& j, std::vector<int64_t>& off, int lanes) {
  j.Hp = j.OH + j.kh - 1;
  j.Wp = j.OW + j.kw - 1;
  j.nvec = ceil_div((j.OH - 1) * j.Wp + j.OW, lanes);
  j.lp = std::max(j.Hp * j.Wp, j.nvec * lanes + (j.kh - 1) * j.Wp + j.kw - 1);
  off.clear();
  for (int64_t c = 0; c < j.cin; ++c)
    for (int64_t ky = 0; ky < j.kh; ++ky)
      for (int64_t kx = 0; kx < j.kw; ++kx) off.push_back(c * j.lp + ky * j.Wp + kx);
  j.off = off.data();
}

template <class T>
void run_flat(const Kernels<T>& K, const FlatJob<T>& job, int64_t N) {
  if (N == 0) return;
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), N));
  const int64_t per = conv::flat_scratch(job, K.lanes);
  std::unique_ptr<T[]> scratch(new T[static_cast<size_t>(per * nt)]);  // every kernel writes before reading
  // Two samples per item: fine-grained enough to balance, coarse enough to amortise.
  for_items((N + 1) / 2, nt, true, [&](int64_t i, int t) {
    K.flat_conv(job, 2 * i, std::min<int64_t>(N, 2 * i + 2), scratch.get() + per * t);
  });
}

struct Geometry {
  int64_t N, C, H, W, FN, kh, kw, stride, pad, OH, OW;
};

template <class T>
void forward(const Geometry& g, const T* x, const T* w, const T* bias, T* y) {
  if (g.N == 0 || g.FN == 0) return;
  const Kernels<T>& K = kernels<T>();
  const int64_t nv = ceil_div(g.FN, K.lanes), np = nv * K.lanes, taps = g.kh * g.kw;
  if (use_flat(g.stride, g.FN, g.C * taps, K.lanes,
               same_direct(K, g.H, g.W, g.OH, g.OW, g.pad, g.kh, g.kw, g.FN))) {
    std::vector<T> wt(static_cast<size_t>(std::max<int64_t>(g.C * taps * g.FN, 1)));
    for (int64_t f = 0; f < g.FN; ++f)
      for (int64_t k = 0; k < g.C * taps; ++k) wt[k * g.FN + f] = w[f * g.C * taps + k];
    std::vector<int64_t> off;
    FlatJob<T> job{x, g.C * g.H * g.W, g.C, g.H, g.W, g.pad, g.pad, g.kh, g.kw, g.OH, g.OW,
                   0, 0, 0, 0, wt.data(), nullptr, g.FN, y, g.FN * g.OH * g.OW, bias};
    flat_geometry(job, off, K.lanes);
    run_flat(K, job, g.N);
    return;
  }
  // B[((ky*kw + kx) * C + c) * np + fn] = W[fn, c, ky, kx]
  std::vector<T> B(static_cast<size_t>(std::max<int64_t>(taps * g.C * np, 1)), T(0));
  for (int64_t f = 0; f < g.FN; ++f)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t t = 0; t < taps; ++t) B[(t * g.C + c) * np + f] = w[(f * g.C + c) * taps + t];
  Runs runs;
  for (int64_t oy = 0; oy < g.OH; ++oy) {
    for (int64_t ox = 0; ox < g.OW; ++ox) {
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = oy * g.stride - g.pad + ky;
        if (iy < 0 || iy >= g.H) continue;
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const int64_t ix = ox * g.stride - g.pad + kx;
          if (ix < 0 || ix >= g.W) continue;
          runs.add((iy * g.W + ix) * g.C, (ky * g.kw + kx) * g.C, g.C);
        }
      }
      runs.end_pixel();
    }
  }
  TileJob<T> job{x, g.C * g.H * g.W, g.C, g.H * g.W, B.data(), np, g.FN,
                 runs.a.data(), runs.b.data(), runs.len.data(), runs.start.data(), g.OH * g.OW,
                 y, g.FN * g.OH * g.OW, bias, vchunk_of(K, nv)};
  run_tiles(K, job, g.N);
}

// dx[c, iy, ix] = sum over fn, ky, kx of dy[fn, oy, ox] * W[fn, c, ky, kx] where
// iy = oy*s - pad + ky: a gather over dy with the taps flipped, so that stride 1 gives
// runs of consecutive dy pixels.
template <class T>
void backward_data(const Geometry& g, const T* dy, const T* w, T* dx) {
  if (g.N == 0 || g.C == 0) return;
  const Kernels<T>& K = kernels<T>();
  const int64_t nv = ceil_div(g.C, K.lanes), cp = nv * K.lanes, taps = g.kh * g.kw;
  if (use_flat(g.stride, g.C, g.FN * taps, K.lanes,
               same_direct(K, g.OH, g.OW, g.H, g.W, g.kh - 1 - g.pad, g.kh, g.kw, g.C))) {
    // A stride-1 convolution of dy with the flipped, transposed kernel and padding kh-1-pad:
    // wt[((fn*kh + fy)*kw + fx) * C + c] = W[fn, c, kh-1-fy, kw-1-fx].
    std::vector<T> wt(static_cast<size_t>(std::max<int64_t>(g.FN * taps * g.C, 1)));
    for (int64_t f = 0; f < g.FN; ++f)
      for (int64_t c = 0; c < g.C; ++c)
        for (int64_t t = 0; t < taps; ++t) wt[((f * taps) + taps - 1 - t) * g.C + c] = w[(f * g.C + c) * taps + t];
    std::vector<int64_t> off;
    FlatJob<T> job{dy, g.FN * g.OH * g.OW, g.FN, g.OH, g.OW, g.kh - 1 - g.pad, g.kw - 1 - g.pad,
                   g.kh, g.kw, g.H, g.W, 0, 0, 0, 0, wt.data(), nullptr, g.C, dx,
                   g.C * g.H * g.W, nullptr};
    flat_geometry(job, off, K.lanes);
    run_flat(K, job, g.N);
    return;
  }
  // B[((fy*kw + fx) * FN + fn) * cp + c] = W[fn, c, kh-1-fy, kw-1-fx]
  std::vector<T> B(static_cast<size_t>(std::max<int64_t>(taps * g.FN * cp, 1)), T(0));
  for (int64_t f = 0; f < g.FN; ++f)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t t = 0; t < taps; ++t)
        B[((taps - 1 - t) * g.FN + f) * cp + c] = w[(f * g.C + c) * taps + t];
  Runs runs;
  for (int64_t iy = 0; iy < g.H; ++iy) {
    for (int64_t ix = 0; ix < g.W; ++ix) {
      for (int64_t fy = 0; fy < g.kh; ++fy) {
        const int64_t ny = iy + g.pad - (g.kh - 1 - fy);
        if (ny < 0 || ny % g.stride) continue;
        const int64_t oy = ny / g.stride;
        if (oy >= g.OH) continue;
        for (int64_t fx = 0; fx < g.kw; ++fx) {
          const int64_t nx = ix + g.pad - (g.kw - 1 - fx);
          if (nx < 0 || nx % g.stride) continue;
          const int64_t ox = nx / g.stride;
          if (ox >= g.OW) continue;
          runs.add((oy * g.OW + ox) * g.FN, (fy * g.kw + fx) * g.FN, g.FN);
        }
      }
      runs.end_pixel();
    }
  }
  TileJob<T> job{dy, g.FN * g.OH * g.OW, g.FN, g.OH * g.OW, B.data(), cp, g.C,
                 runs.a.data(), runs.b.data(), runs.len.data(), runs.start.data(), g.H * g.W,
                 dx, g.C * g.H * g.W, nullptr, vchunk_of(K, nv)};
  run_tiles(K, job, g.N);
}

template <class T>
void backward_weights(const Geometry& g, const T* x, const T* dy, T* dw, T* db) {
  const int64_t taps = g.kh * g.kw, rows = taps * g.C;
  std::fill(dw, dw + g.FN * rows, T(0));
  std::fill(db, db + g.FN, T(0));
  if (g.N == 0 || g.FN == 0) return;
  const Kernels<T>& K = kernels<T>();
  const int64_t nv = ceil_div(g.FN, K.lanes), np = nv * K.lanes;
  if (use_flat(g.stride, g.FN, rows, K.lanes, false)) {
    FlatDwJob<T> job{x, dy, g.C, g.H, g.W, g.FN, g.OH, g.OW, g.kh, g.kw, g.pad, g.pad,
                     (g.kw - 1) * g.C <= g.FN, 0, 0, 0, 0, 0, nullptr};
    std::vector<int64_t> off;
    if (job.shifted) {
      // Few input channels (the books' first layers): no copy of dy, whose planes are the
      // larger part.  With many (16 -> 16, 3x3), the kw copies of x are read from L2 by every
      // block of output channels: 5.4 ms shifted against 4.5 padded, float, 1 thread.
      const int64_t P = g.OH * g.OW;
      job.lx = ceil_div((g.OH + g.kh - 1) * g.OW, K.lanes) * K.lanes;
      job.ld = P;
      job.nfull = P / K.lanes;
      job.rem = static_cast<int>(P - job.nfull * K.lanes);
      for (int64_t c = 0; c < g.C; ++c)
        for (int64_t ky = 0; ky < g.kh; ++ky)
          for (int64_t kx = 0; kx < g.kw; ++kx) off.push_back((kx * g.C + c) * job.lx + ky * g.OW);
    } else {
      FlatJob<T> xg{x, g.C * g.H * g.W, g.C, g.H, g.W, g.pad, g.pad, g.kh, g.kw, g.OH, g.OW,
                    0, 0, 0, 0, nullptr, nullptr, 0, nullptr, 0, nullptr};
      flat_geometry(xg, off, K.lanes);
      job.lx = xg.lp;
      job.Wp = xg.Wp;
      job.ld = ceil_div(std::max(xg.nvec * K.lanes, g.OH * xg.Wp), K.lanes) * K.lanes;
      job.nfull = xg.nvec;
    }
    job.off = off.data();
    const int nt = static_cast<int>(std::min<int64_t>(num_threads(), g.N));
    const int64_t per = conv::flat_dw_scratch(job), part = g.FN * rows * K.lanes;
    std::unique_ptr<T[]> scratch(new T[static_cast<size_t>(per * nt)]);  // every kernel writes before reading
    std::vector<T> dwv(static_cast<size_t>(part * nt), T(0));
    std::vector<double> dbt(static_cast<size_t>(g.FN * nt), 0.0);
    // A fixed sample range per thread: the partial sums do not depend on timing.
    for_items(nt, nt, false, [&](int64_t i, int t) {
      const int64_t n0 = g.N * i / nt, n1 = g.N * (i + 1) / nt;
      K.flat_dw(job, n0, n1, scratch.get() + per * t, dwv.data() + part * t, dbt.data() + g.FN * t);
    });
    for (int64_t f = 0; f < g.FN; ++f) {
      double sb = 0;
      for (int t = 0; t < nt; ++t) sb += dbt[g.FN * t + f];
      db[f] = static_cast<T>(sb);
      for (int64_t k = 0; k < rows; ++k) {
        T acc = T(0);
        for (int t = 0; t < nt; ++t)
          for (int l = 0; l < K.lanes; ++l) acc += dwv[part * t + (f * rows + k) * K.lanes + l];
        dw[f * rows + k] = acc;
      }
    }
    return;
  }
  DwJob<T> job{x, dy, g.C, g.H, g.W, g.FN, g.OH, g.OW, g.kh, g.kw, g.stride, g.pad, np,
               vchunk_of(K, nv)};
  // Group size: the packed group (x and dy) in about 256 KiB, at most 16 samples.
  const int64_t per_sample = (g.H * g.W * g.C + g.OH * g.OW * np) * static_cast<int64_t>(sizeof(T));
  const int m = static_cast<int>(std::clamp<int64_t>((256 << 10) / std::max<int64_t>(per_sample, 1), 1, 16));
  auto groups = make_groups(g.N, m, num_threads());
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), groups.size()));
  const int64_t per = conv::dw_scratch(job, m), part = rows * np;
  std::unique_ptr<T[]> scratch(new T[static_cast<size_t>(per * nt)]);  // every kernel writes before reading
  std::vector<T> dwt(static_cast<size_t>(part * nt), T(0));
  std::vector<double> dbt(static_cast<size_t>(g.FN * nt), 0.0);
  for_items(static_cast<int64_t>(groups.size()), nt, false, [&](int64_t gi, int t) {
    K.dw_group(job, groups[gi].first, groups[gi].second, scratch.get() + per * t,
               dwt.data() + part * t, dbt.data() + g.FN * t);
  });
  for (int64_t f = 0; f < g.FN; ++f) {
    double s = 0;
    for (int t = 0; t < nt; ++t) s += dbt[g.FN * t + f];
    db[f] = static_cast<T>(s);
    for (int64_t c = 0; c < g.C; ++c) {
      for (int64_t tp = 0; tp < taps; ++tp) {
        T acc = T(0);
        for (int t = 0; t < nt; ++t) acc += dwt[part * t + (tp * g.C + c) * np + f];
        dw[(f * g.C + c) * taps + tp] = acc;
      }
    }
  }
}

template <class T>
py::tuple conv2d_forward(const carray<T>& x, const carray<T>& w, const carray<T>& b, int64_t stride,
                         int64_t pad) {
  Geometry g{x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0), w.shape(2), w.shape(3),
             stride, pad, 0, 0};
  g.OH = (g.H + 2 * pad - g.kh) / stride + 1;
  g.OW = (g.W + 2 * pad - g.kw) / stride + 1;
  auto y = new_array<T>({g.N, g.FN, g.OH, g.OW});
  const T *xp = x.data(), *wp = w.data(), *bp = b.data();
  T* yp = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    forward<T>(g, xp, wp, bp, yp);
  }
  return py::make_tuple(std::move(y), py::make_tuple(x, w, stride, pad));
}

template <class T>
py::tuple conv2d_backward(const carray<T>& dy, const py::tuple& state, bool need_dx) {
  const auto x = state[0].cast<carray<T>>();
  const auto w = state[1].cast<carray<T>>();
  const int64_t stride = state[2].cast<int64_t>(), pad = state[3].cast<int64_t>();
  Geometry g{x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0), w.shape(2), w.shape(3),
             stride, pad, dy.shape(2), dy.shape(3)};
  carray<T> dw({g.FN, g.C, g.kh, g.kw});
  carray<T> db({g.FN});
  py::object dx = py::none();
  T* dxp = nullptr;
  if (need_dx) {
    auto d = new_array<T>({g.N, g.C, g.H, g.W});
    dxp = d.mutable_data();
    dx = std::move(d);
  }
  const T *xp = x.data(), *wp = w.data(), *dyp = dy.data();
  T *dwp = dw.mutable_data(), *dbp = db.mutable_data();
  {
    py::gil_scoped_release nogil;
    if (dxp) backward_data<T>(g, dyp, wp, dxp);
    backward_weights<T>(g, xp, dyp, dwp, dbp);
  }
  return py::make_tuple(dx, std::move(dw), std::move(db));
}

template <class T>
void bind_dtype(py::module_& m) {
  m.def("conv2d_forward", &conv2d_forward<T>, py::arg("x").noconvert(), py::arg("W").noconvert(),
        py::arg("b").noconvert(), py::arg("stride"), py::arg("pad"),
        "x (N, C, H, W), W (FN, C, kh, kw), b (FN,) -> (y (N, FN, OH, OW), state for backward).");
  m.def("conv2d_backward", &conv2d_backward<T>, py::arg("dy").noconvert(), py::arg("state"),
        py::arg("need_dx"), "dy (N, FN, OH, OW), state -> (dx (N, C, H, W) or None, dW, db).");
}

}  // namespace

void bind_conv(py::module_& m) {
  bind_dtype<float>(m);
  bind_dtype<double>(m);
}

}  // namespace fastdl
