// fastdl._cpp: C++ kernels behind fastdl's backend switch.
//
// Every kernel takes C-contiguous arrays of its exact dtype (no conversion: fastdl.ops has
// validated them, and read-only inputs are accepted), allocates its outputs here while
// holding the GIL, then releases the GIL around the computation, which touches raw
// pointers only.  float32 and float64 are separate overloads of one name.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <pthread.h>

#include <array>
#include <string>
#include <type_traits>
#include <vector>

#include "conv/conv.h"
#include "dense/dense.h"
#include "elementwise/adam.h"
#include "elementwise/batchnorm.h"
#include "elementwise/relu.h"
#include "im2col/im2col.h"
#include "pool/pool.h"
#include "probe/probe.h"
#include "softmax/softmax.h"
#include "support/alloc.h"
#include "support/arrays.h"
#include "support/cpu.h"
#include "support/parallel.h"

#ifndef FASTDL_VERSION
#define FASTDL_VERSION "unknown"
#endif

namespace py = pybind11;

namespace {

template <class T>
using carray = py::array_t<T, py::array::c_style>;

using Shape4 = std::array<py::ssize_t, 4>;

std::string compiler_string() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#else
  return "unknown";
#endif
}

py::ssize_t out_size(py::ssize_t n, py::ssize_t k, py::ssize_t stride, py::ssize_t pad) {
  return (n + 2 * pad - k) / stride + 1;
}

fastdl::Window window(const Shape4& s, py::ssize_t kh, py::ssize_t kw, py::ssize_t stride, py::ssize_t pad) {
  return {s[0], s[1], s[2], s[3], kh, kw, stride, pad,
          out_size(s[2], kh, stride, pad), out_size(s[3], kw, stride, pad)};
}

template <class T>
carray<T> im2col(const carray<T>& x, py::ssize_t kh, py::ssize_t kw, py::ssize_t stride, py::ssize_t pad) {
  const auto w = window({x.shape(0), x.shape(1), x.shape(2), x.shape(3)}, kh, kw, stride, pad);
  auto col = fastdl::new_array<T>({w.N * w.OH * w.OW, w.C * kh * kw});
  const T* xp = x.data();
  T* cp = col.mutable_data();
  {
    py::gil_scoped_release nogil;
    fastdl::im2col<T>(xp, cp, w);
  }
  return col;
}

template <class T>
carray<T> col2im(const carray<T>& col, const Shape4& x_shape, py::ssize_t kh, py::ssize_t kw,
                 py::ssize_t stride, py::ssize_t pad) {
  const auto w = window(x_shape, kh, kw, stride, pad);
  auto x = fastdl::new_array<T>({x_shape[0], x_shape[1], x_shape[2], x_shape[3]});
  const T* cp = col.data();
  T* xp = x.mutable_data();
  {
    py::gil_scoped_release nogil;
    fastdl::col2im<T>(cp, xp, w);
  }
  return x;
}

// relu: the fused maxpool(relu(x)), argmax -1 where no gradient flows (pool/pool.h).
template <class T, bool relu>
py::tuple maxpool_forward(const carray<T>& x, py::ssize_t ph, py::ssize_t pw, py::ssize_t stride,
                          py::ssize_t pad) {
  const py::ssize_t N = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
  const py::ssize_t OH = out_size(H, ph, stride, pad), OW = out_size(W, pw, stride, pad);
  auto y = fastdl::new_array<T>({N, C, OH, OW});
  auto am = fastdl::new_array<int64_t>({N, C, OH, OW});
  const T* xp = x.data();
  T* yp = y.mutable_data();
  int64_t* ap = am.mutable_data();
  {
    py::gil_scoped_release nogil;
    fastdl::maxpool2d_forward<T>(xp, yp, ap, N * C, H, W, ph, pw, stride, pad, OH, OW, relu);
  }
  return py::make_tuple(std::move(y), std::move(am));
}

// Inference: the pooled values only (maxpool2d of relu(x) if relu), no argmax array.
template <class T>
carray<T> maxpool_infer(const carray<T>& x, py::ssize_t ph, py::ssize_t pw, py::ssize_t stride, py::ssize_t pad,
                        bool relu) {
  const py::ssize_t N = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
  const py::ssize_t OH = out_size(H, ph, stride, pad), OW = out_size(W, pw, stride, pad);
  auto y = fastdl::new_array<T>({N, C, OH, OW});
  const T* xp = x.data();
  T* yp = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    fastdl::maxpool2d_forward<T>(xp, yp, nullptr, N * C, H, W, ph, pw, stride, pad, OH, OW, relu);
  }
  return y;
}

template <class T, bool relu>
carray<T> maxpool_backward(const carray<T>& dy, const carray<int64_t>& argmax, const Shape4& x_shape,
                           py::ssize_t ph, py::ssize_t pw, py::ssize_t stride, py::ssize_t pad) {
  const py::ssize_t H = x_shape[2], W = x_shape[3];
  auto dx = fastdl::new_array<T>({x_shape[0], x_shape[1], H, W});
  const T* gp = dy.data();
  const int64_t* ap = argmax.data();
  T* dp = dx.mutable_data();
  bool ok;
  {
    py::gil_scoped_release nogil;
    ok = fastdl::maxpool2d_backward<T>(gp, ap, dp, x_shape[0] * x_shape[1], H, W, ph, pw, stride, pad,
                                       out_size(H, ph, stride, pad), out_size(W, pw, stride, pad), relu);
  }
  if (!ok) throw py::value_error("argmax holds an index outside the input plane [0, H*W)");
  return dx;
}

template <class T, class L>
py::tuple softmax_xent(const carray<T>& z, const carray<L>& t) {
  const py::ssize_t N = z.shape(0), K = z.shape(1);
  auto dz = fastdl::new_array<T>({N, K});
  const T* zp = z.data();
  const L* tp = t.data();
  T* dp = dz.mutable_data();
  double loss;
  {
    py::gil_scoped_release nogil;
    if constexpr (std::is_same_v<L, int64_t>)
      loss = fastdl::softmax_xent_labels<T>(zp, tp, dp, N, K);
    else
      loss = fastdl::softmax_xent_targets<T>(zp, tp, dp, N, K);
  }
  return py::make_tuple(loss, std::move(dz));
}

template <class T>
py::tuple relu_forward(const carray<T>& x) {
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
  auto y = fastdl::new_array<T>(shape);
  auto mask = fastdl::new_array<bool>(shape);
  const T* xp = x.data();
  T* yp = y.mutable_data();
  bool* mp = mask.mutable_data();
  const py::ssize_t n = x.size();
  {
    py::gil_scoped_release nogil;
    fastdl::relu_forward<T>(xp, yp, mp, n);
  }
  return py::make_tuple(std::move(y), std::move(mask));
}

template <class T>
carray<T> relu_backward(const carray<T>& dout, const py::array_t<bool, py::array::c_style>& mask) {
  if (mask.size() != dout.size()) throw py::value_error("relu_backward: mask and dout differ in size");
  std::vector<py::ssize_t> shape(dout.shape(), dout.shape() + dout.ndim());
  auto dx = fastdl::new_array<T>(shape);
  const T* dp = dout.data();
  const bool* mp = mask.data();
  T* xp = dx.mutable_data();
  const py::ssize_t n = dout.size();
  {
    py::gil_scoped_release nogil;
    fastdl::relu_backward<T>(dp, mp, xp, n);
  }
  return dx;
}

// relu: the fused relu(conv2d + b), whose state also holds y (the backward's mask is y > 0).
template <class T, bool relu>
py::tuple conv2d_forward(const carray<T>& x, const carray<T>& w, const carray<T>& b, int64_t stride,
                         int64_t pad) {
  fastdl::conv::Geometry g{x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0), w.shape(2), w.shape(3),
             stride, pad, 0, 0};
  g.OH = out_size(g.H, g.kh, stride, pad);
  g.OW = out_size(g.W, g.kw, stride, pad);
  auto y = fastdl::new_array<T>({g.N, g.FN, g.OH, g.OW});
  const T *xp = x.data(), *wp = w.data(), *bp = b.data();
  T* yp = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    fastdl::conv::forward<T>(g, xp, wp, bp, yp, relu);
  }
  if (relu) return py::make_tuple(y, py::make_tuple(x, w, stride, pad, y));
  return py::make_tuple(std::move(y), py::make_tuple(x, w, stride, pad));
}

// The results of a convolution's backward: dW (FN, C, kh, kw), db (FN,) and, with need_dx,
// dx (N, C, H, W) from the block cache.
template <class T>
struct ConvGrads {
  carray<T> dw, db;
  py::object dx = py::none();
  T* dxp = nullptr;

  ConvGrads(const fastdl::conv::Geometry& g, bool need_dx) : dw({g.FN, g.C, g.kh, g.kw}), db({g.FN}) {
    if (need_dx) {
      auto d = fastdl::new_array<T>({g.N, g.C, g.H, g.W});
      dxp = d.mutable_data();
      dx = std::move(d);
    }
  }
  py::tuple result() { return py::make_tuple(dx, std::move(dw), std::move(db)); }
};

// Convolution -> ReLU -> max pool with the convolution's output kept in cache (conv_pool.cpp):
// (y (N, FN, POH, POW), state (x, W, stride, pad, argmax, ph, pw, pool stride, pool pad)).
// argmax (N, FN, POH, POW): int64 indices into the convolution's output plane, or, where
// conv_relu_pool_cells says so, int8 cells of the 2 x 2 windows (pool.h); -1 where the ReLU
// stopped the window.
template <class T>
py::tuple conv2d_relu_maxpool2d_forward(const carray<T>& x, const carray<T>& w, const carray<T>& b, int64_t stride,
                                        int64_t pad, int64_t ph, int64_t pw, int64_t pstride, int64_t ppad) {
  fastdl::conv::Geometry g{x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0), w.shape(2), w.shape(3),
                           stride, pad, out_size(x.shape(2), w.shape(2), stride, pad),
                           out_size(x.shape(3), w.shape(3), stride, pad)};
  fastdl::conv::PoolGeometry p{ph, pw, pstride, ppad, out_size(g.OH, ph, pstride, ppad),
                               out_size(g.OW, pw, pstride, ppad)};
  auto y = fastdl::new_array<T>({g.N, g.FN, p.OH, p.OW});
  const T *xp = x.data(), *wp = w.data(), *bp = b.data();
  T* yp = y.mutable_data();
  py::array am;
  int64_t* ap = nullptr;
  int8_t* cp = nullptr;
  if (fastdl::conv::conv_relu_pool_cells<T>(g, p)) {
    auto a = fastdl::new_array<int8_t>({g.N, g.FN, p.OH, p.OW});
    cp = a.mutable_data();
    am = std::move(a);
  } else {
    auto a = fastdl::new_array<int64_t>({g.N, g.FN, p.OH, p.OW});
    ap = a.mutable_data();
    am = std::move(a);
  }
  {
    py::gil_scoped_release nogil;
    fastdl::conv::conv_relu_pool_forward<T>(g, p, xp, wp, bp, yp, ap, cp);
  }
  return py::make_tuple(std::move(y), py::make_tuple(x, w, stride, pad, std::move(am), ph, pw, pstride, ppad));
}

template <class T>
py::tuple conv2d_relu_maxpool2d_backward(const carray<T>& dy, const py::tuple& state, bool need_dx) {
  const auto x = state[0].cast<carray<T>>();
  const auto w = state[1].cast<carray<T>>();
  const int64_t stride = state[2].cast<int64_t>(), pad = state[3].cast<int64_t>();
  fastdl::conv::Geometry g{x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0), w.shape(2), w.shape(3),
                           stride, pad, out_size(x.shape(2), w.shape(2), stride, pad),
                           out_size(x.shape(3), w.shape(3), stride, pad)};
  fastdl::conv::PoolGeometry p{state[5].cast<int64_t>(), state[6].cast<int64_t>(), state[7].cast<int64_t>(),
                               state[8].cast<int64_t>(), 0, 0};
  p.OH = out_size(g.OH, p.ph, p.stride, p.pad);
  p.OW = out_size(g.OW, p.pw, p.stride, p.pad);
  // the forward's argmax: int8 cells (2 x 2 windows of stride 2) or int64 plane indices
  const bool cells = py::isinstance<py::array_t<int8_t>>(state[4]);
  if (cells && (p.ph != 2 || p.pw != 2 || p.stride != 2 || p.pad != 0))
    throw py::value_error("conv2d_relu_maxpool2d_backward: the state's argmax cells need 2 x 2 windows of stride 2");
  carray<int8_t> cm;
  carray<int64_t> am;
  if (cells)
    cm = state[4].cast<carray<int8_t>>();
  else
    am = state[4].cast<carray<int64_t>>();
  if (dy.size() != g.N * g.FN * p.OH * p.OW || (cells ? cm.size() : am.size()) != dy.size())
    throw py::value_error("conv2d_relu_maxpool2d_backward: dy and the state's argmax differ in size");
  ConvGrads<T> out(g, need_dx);
  T* dxp = out.dxp;
  const T *xp = x.data(), *wp = w.data(), *dyp = dy.data();
  const int64_t* ap = cells ? nullptr : am.data();
  const int8_t* cp = cells ? cm.data() : nullptr;
  T *dwp = out.dw.mutable_data(), *dbp = out.db.mutable_data();
  bool ok;
  {
    py::gil_scoped_release nogil;
    ok = fastdl::conv::conv_relu_pool_backward<T>(g, p, xp, wp, dyp, ap, cp, dxp, dwp, dbp);
  }
  if (!ok) throw py::value_error("conv2d_relu_maxpool2d_backward: an argmax entry lies outside its window's plane");
  return out.result();
}

// Inference: y alone (relu: relu(conv2d + b)), no state.
template <class T>
carray<T> conv2d_infer(const carray<T>& x, const carray<T>& w, const carray<T>& b, int64_t stride, int64_t pad,
                       bool relu) {
  fastdl::conv::Geometry g{x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0), w.shape(2), w.shape(3),
                           stride, pad, out_size(x.shape(2), w.shape(2), stride, pad),
                           out_size(x.shape(3), w.shape(3), stride, pad)};
  auto y = fastdl::new_array<T>({g.N, g.FN, g.OH, g.OW});
  const T *xp = x.data(), *wp = w.data(), *bp = b.data();
  T* yp = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    fastdl::conv::forward<T>(g, xp, wp, bp, yp, relu);
  }
  return y;
}

// A state of five holds the fused forward's output y: the gradient is dy * (y > 0), which
// the kernels apply as they read dy (no masked copy of dy is written).
template <class T>
py::tuple conv2d_backward(const carray<T>& dy, const py::tuple& state, bool need_dx) {
  const auto x = state[0].cast<carray<T>>();
  const auto w = state[1].cast<carray<T>>();
  const int64_t stride = state[2].cast<int64_t>(), pad = state[3].cast<int64_t>();
  fastdl::conv::Geometry g{x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0), w.shape(2), w.shape(3),
             stride, pad, dy.shape(2), dy.shape(3)};
  ConvGrads<T> out(g, need_dx);
  T* dxp = out.dxp;
  const T *xp = x.data(), *wp = w.data(), *dyp = dy.data();
  T *dwp = out.dw.mutable_data(), *dbp = out.db.mutable_data();
  carray<T> y;
  const T* yp = nullptr;  // the gate
  if (state.size() == 5) {
    y = state[4].cast<carray<T>>();
    if (y.size() != dy.size()) throw py::value_error("conv2d_bias_relu_backward: dy and y differ in size");
    yp = y.data();
  }
  {
    py::gil_scoped_release nogil;
    if (dxp) fastdl::conv::backward_data<T>(g, dyp, wp, dxp, yp);
    fastdl::conv::backward_weights<T>(g, xp, dyp, dwp, dbp, yp);
  }
  return out.result();
}

// p, m and v are updated in place: they must be C-contiguous, writeable arrays of dtype T
// (noconvert: a converted copy would be updated instead of the caller's array).
template <class T>
void adam_update(carray<T> p, const carray<T>& g, carray<T> m, carray<T> v, double lr, double c1, double c2,
                 double eps) {
  const py::ssize_t n = p.size();
  if (g.size() != n || m.size() != n || v.size() != n)
    throw py::value_error("adam_update: p, g, m and v must have the same size");
  T* pp = p.mutable_data();  // throws if not writeable
  T* mp = m.mutable_data();
  T* vp = v.mutable_data();
  const T* gp = g.data();
  py::gil_scoped_release nogil;
  fastdl::adam_update<T>(pp, gp, mp, vp, n, static_cast<T>(lr), static_cast<T>(c1), static_cast<T>(c2),
                         static_cast<T>(eps));
}

// Adam.update's fast path: every (p, g, m, v) of the lists updated as adam_update would, in
// one call.  False, and nothing updated, unless every array is a C-contiguous ndarray of one
// float dtype (float32 or float64, the same for all), p, m and v writeable, the four of a
// parameter the same size and none overlapping another of its four in memory; the caller
// then updates each parameter through its own checks.
namespace {
bool disjoint(const py::array& a, const py::array& b) {
  const char* pa = static_cast<const char*>(a.data());
  const char* pb = static_cast<const char*>(b.data());
  return a.nbytes() == 0 || b.nbytes() == 0 || pa + a.nbytes() <= pb || pb + b.nbytes() <= pa;
}
}  // namespace

bool adam_update_many(const py::list& ps, const py::list& gs, const py::list& ms, const py::list& vs, double lr,
                      double c1, double c2, double eps) {
  const size_t n = ps.size();
  if (gs.size() != n || ms.size() != n || vs.size() != n) return false;
  std::vector<std::array<py::array, 4>> work;
  work.reserve(n);
  bool f64 = false;
  const int flags = py::array::c_style;
  for (size_t i = 0; i < n; ++i) {
    std::array<py::handle, 4> h{ps[i], gs[i], ms[i], vs[i]};
    std::array<py::array, 4> a;
    for (int j = 0; j < 4; ++j) {
      if (!py::isinstance<py::array>(h[j])) return false;
      a[j] = py::reinterpret_borrow<py::array>(h[j]);
      const bool is32 = a[j].dtype().is(py::dtype::of<float>()), is64 = a[j].dtype().is(py::dtype::of<double>());
      if (!(is32 || is64) || !(a[j].flags() & flags) || a[j].size() != a[0].size()) return false;
      if (i == 0 && j == 0) f64 = is64;
      if (is64 != f64) return false;
      if (j != 1 && !a[j].writeable()) return false;
      for (int k = 0; k < j; ++k)
        if (!disjoint(a[j], a[k])) return false;
    }
    work.push_back(std::move(a));
  }
  py::gil_scoped_release nogil;
  for (auto& a : work) {
    if (f64)
      fastdl::adam_update<double>(static_cast<double*>(a[0].mutable_data()), static_cast<const double*>(a[1].data()),
                                  static_cast<double*>(a[2].mutable_data()), static_cast<double*>(a[3].mutable_data()),
                                  a[0].size(), lr, c1, c2, eps);
    else
      fastdl::adam_update<float>(static_cast<float*>(a[0].mutable_data()), static_cast<const float*>(a[1].data()),
                                 static_cast<float*>(a[2].mutable_data()), static_cast<float*>(a[3].mutable_data()),
                                 a[0].size(), static_cast<float>(lr), static_cast<float>(c1), static_cast<float>(c2),
                                 static_cast<float>(eps));
  }
  return true;
}

template <class T>
py::tuple batchnorm_forward(const carray<T>& x, const carray<T>& gamma, const carray<T>& beta, double eps) {
  if (x.ndim() != 2 || gamma.ndim() != 1 || beta.ndim() != 1 || gamma.shape(0) != x.shape(1) ||
      beta.shape(0) != x.shape(1) || x.shape(0) < 1)
    throw py::value_error("batchnorm_forward: needs x (N, D) with N >= 1, gamma (D,), beta (D,)");
  const int64_t N = x.shape(0), D = x.shape(1);
  auto y = fastdl::new_array<T>({N, D});
  auto xc = fastdl::new_array<T>({N, D});
  auto xn = fastdl::new_array<T>({N, D});
  auto sd = fastdl::new_array<T>({D});
  auto mu = fastdl::new_array<T>({D});
  auto var = fastdl::new_array<T>({D});
  const T *xp = x.data(), *gp = gamma.data(), *bp = beta.data();
  T *yp = y.mutable_data(), *cp = xc.mutable_data(), *np_ = xn.mutable_data(), *sp = sd.mutable_data(),
    *mp = mu.mutable_data(), *vp = var.mutable_data();
  {
    py::gil_scoped_release nogil;
    fastdl::batchnorm_forward<T>(xp, gp, bp, static_cast<T>(eps), N, D, yp, cp, np_, sp, mp, vp);
  }
  return py::make_tuple(std::move(y), std::move(xc), std::move(xn), std::move(sd), std::move(mu), std::move(var));
}

template <class T>
py::tuple batchnorm_backward(const carray<T>& dout, const carray<T>& xc, const carray<T>& xn, const carray<T>& sd,
                             const carray<T>& gamma) {
  if (dout.ndim() != 2 || xc.ndim() != 2 || xn.ndim() != 2 || sd.ndim() != 1 || gamma.ndim() != 1 ||
      xc.shape(0) != dout.shape(0) || xn.shape(0) != dout.shape(0) || xc.shape(1) != dout.shape(1) ||
      xn.shape(1) != dout.shape(1) || sd.shape(0) != dout.shape(1) || gamma.shape(0) != dout.shape(1) ||
      dout.shape(0) < 1)
    throw py::value_error("batchnorm_backward: needs dout, xc, xn (N, D) with N >= 1, std and gamma (D,)");
  const int64_t N = dout.shape(0), D = dout.shape(1);
  auto dx = fastdl::new_array<T>({N, D});
  auto dgamma = fastdl::new_array<T>({D});
  auto dbeta = fastdl::new_array<T>({D});
  const T *dp = dout.data(), *cp = xc.data(), *np_ = xn.data(), *sp = sd.data(), *gp = gamma.data();
  T *xp = dx.mutable_data(), *ggp = dgamma.mutable_data(), *bbp = dbeta.mutable_data();
  {
    py::gil_scoped_release nogil;
    fastdl::batchnorm_backward<T>(dp, cp, np_, sp, gp, N, D, xp, ggp, bbp);
  }
  return py::make_tuple(std::move(dx), std::move(dgamma), std::move(dbeta));
}

// Affine (float32, AVX-512; the Python side uses BLAS otherwise): x (N, D) @ W (D, M) + b
// with act 0 (none), 1 (ReLU) or 2 (sigmoid) applied in the same pass.
carray<float> affine_forward(const carray<float>& x, const carray<float>& w, const carray<float>& b, int act) {
  if (x.ndim() != 2 || w.ndim() != 2 || b.ndim() != 1 || x.shape(1) != w.shape(0) || b.shape(0) != w.shape(1))
    throw py::value_error("affine_forward: needs x (N, D), W (D, M), b (M,)");
  if (act < 0 || act > 2) throw py::value_error("affine_forward: act must be 0, 1 or 2");
  if (!fastdl::dense::available()) throw py::value_error("affine_forward: needs AVX-512 (cpu_level)");
  const int64_t N = x.shape(0), D = x.shape(1), M = w.shape(1);
  auto y = fastdl::new_array<float>({N, M});
  const float *xp = x.data(), *wp = w.data(), *bp = b.data();
  float* yp = y.mutable_data();
  py::gil_scoped_release nogil;
  fastdl::dense::gemm_f32(xp, D, 1, wp, M, false, bp, yp, M, N, M, D, act);
  return y;
}

// dout (N, M), the forward's x (N, D) and W (D, M) -> (dx (N, D) or None, dW = x^T dout, db).
py::tuple affine_backward(const carray<float>& dout, const carray<float>& x, const carray<float>& w,
                          bool need_dx) {
  if (dout.ndim() != 2 || x.ndim() != 2 || w.ndim() != 2 || x.shape(1) != w.shape(0) ||
      dout.shape(0) != x.shape(0) || dout.shape(1) != w.shape(1))
    throw py::value_error("affine_backward: needs dout (N, M), x (N, D), W (D, M)");
  if (!fastdl::dense::available()) throw py::value_error("affine_backward: needs AVX-512 (cpu_level)");
  const int64_t N = x.shape(0), D = x.shape(1), M = w.shape(1);
  auto dw = fastdl::new_array<float>({D, M});
  carray<float> db({M});
  py::object dx = py::none();
  float* dxp = nullptr;
  if (need_dx) {
    auto d = fastdl::new_array<float>({N, D});
    dxp = d.mutable_data();
    dx = std::move(d);
  }
  const float *gp = dout.data(), *xp = x.data(), *wp = w.data();
  float *dwp = dw.mutable_data(), *dbp = db.mutable_data();
  {
    py::gil_scoped_release nogil;
    fastdl::dense::gemm_f32(xp, 1, D, gp, M, false, nullptr, dwp, M, D, M, N, fastdl::dense::kNone);
    for (int64_t j = 0; j < M; ++j) dbp[j] = 0.0f;
    for (int64_t n = 0; n < N; ++n)  // row after row, as np.sum(dout, axis=0) adds them
      for (int64_t j = 0; j < M; ++j) dbp[j] += gp[n * M + j];
    if (dxp) fastdl::dense::gemm_f32(gp, M, 1, wp, M, true, nullptr, dxp, D, N, D, M, fastdl::dense::kNone);
  }
  return py::make_tuple(dx, std::move(dw), std::move(db));
}

template <class T>
void bind_kernels(py::module_& m) {
  m.def("conv2d_forward", &conv2d_forward<T, false>, py::arg("x").noconvert(), py::arg("W").noconvert(),
        py::arg("b").noconvert(), py::arg("stride"), py::arg("pad"),
        "x (N, C, H, W), W (FN, C, kh, kw), b (FN,) -> (y (N, FN, OH, OW), state for backward).");
  m.def("conv2d_backward", &conv2d_backward<T>, py::arg("dy").noconvert(), py::arg("state"),
        py::arg("need_dx"), "dy (N, FN, OH, OW), state -> (dx (N, C, H, W) or None, dW, db).");
  m.def("conv2d_bias_relu_forward", &conv2d_forward<T, true>, py::arg("x").noconvert(), py::arg("W").noconvert(),
        py::arg("b").noconvert(), py::arg("stride"), py::arg("pad"),
        "relu(conv2d(x, W) + b) in one pass: -> (y (N, FN, OH, OW), state for conv2d_bias_relu_backward).");
  m.def("conv2d_infer", &conv2d_infer<T>, py::arg("x").noconvert(), py::arg("W").noconvert(),
        py::arg("b").noconvert(), py::arg("stride"), py::arg("pad"), py::arg("relu"),
        "conv2d (relu(conv2d + b) if relu) -> y only, no state (inference).");
  m.def("conv2d_bias_relu_backward", &conv2d_backward<T>, py::arg("dy").noconvert(), py::arg("state"),
        py::arg("need_dx"), "dy (N, FN, OH, OW), fused state -> (dx or None, dW, db) with dy masked by y > 0.");
  m.def("conv2d_relu_maxpool2d_forward", &conv2d_relu_maxpool2d_forward<T>, py::arg("x").noconvert(),
        py::arg("W").noconvert(), py::arg("b").noconvert(), py::arg("stride"), py::arg("pad"), py::arg("ph"),
        py::arg("pw"), py::arg("pool_stride"), py::arg("pool_pad"),
        "maxpool2d(relu(conv2d(x, W) + b)) a few samples at a time -> (y, state); the convolution's output "
        "stays in cache.");
  m.def("conv2d_relu_maxpool2d_backward", &conv2d_relu_maxpool2d_backward<T>, py::arg("dy").noconvert(),
        py::arg("state"), py::arg("need_dx"), "dy of conv2d_relu_maxpool2d_forward -> (dx or None, dW, db).");
  m.def("im2col", &im2col<T>, py::arg("x").noconvert(), py::arg("kh"), py::arg("kw"), py::arg("stride"),
        py::arg("pad"), "x (N, C, H, W) -> col (N*OH*OW, C*kh*kw); rows (n, oy, ox), columns (c, ky, kx).");
  m.def("col2im", &col2im<T>, py::arg("col").noconvert(), py::arg("x_shape"), py::arg("kh"), py::arg("kw"),
        py::arg("stride"), py::arg("pad"), "Adjoint of im2col: col -> x of shape x_shape, overlaps summed.");
  m.def("maxpool2d_forward", &maxpool_forward<T, false>, py::arg("x").noconvert(), py::arg("ph"), py::arg("pw"),
        py::arg("stride"), py::arg("pad"), "x (N, C, H, W) -> (y, argmax int64), both (N, C, OH, OW).");
  m.def("maxpool2d_backward", &maxpool_backward<T, false>, py::arg("dy").noconvert(), py::arg("argmax").noconvert(),
        py::arg("x_shape"), py::arg("ph"), py::arg("pw"), py::arg("stride"), py::arg("pad"),
        "Scatter dy (N, C, OH, OW) to the argmax cells of an input of shape x_shape.");
  m.def("relu_maxpool2d_forward", &maxpool_forward<T, true>, py::arg("x").noconvert(), py::arg("ph"),
        py::arg("pw"), py::arg("stride"), py::arg("pad"),
        "maxpool2d(relu(x)) in one pass -> (y, argmax int64, -1 where the window max is not > 0).");
  m.def("maxpool2d_infer", &maxpool_infer<T>, py::arg("x").noconvert(), py::arg("ph"), py::arg("pw"),
        py::arg("stride"), py::arg("pad"), py::arg("relu"),
        "maxpool2d (of relu(x) if relu) -> y only: no argmax (inference).");
  m.def("relu_maxpool2d_backward", &maxpool_backward<T, true>, py::arg("dy").noconvert(),
        py::arg("argmax").noconvert(), py::arg("x_shape"), py::arg("ph"), py::arg("pw"), py::arg("stride"),
        py::arg("pad"), "Scatter dy to the argmax cells, skipping -1 (relu_maxpool2d_forward's).");
  m.def("softmax_cross_entropy", &softmax_xent<T, int64_t>, py::arg("logits").noconvert(),
        py::arg("t").noconvert(), "logits (N, K), int64 labels (N,) -> (mean loss, dlogits).");
  m.def("softmax_cross_entropy", &softmax_xent<T, T>, py::arg("logits").noconvert(), py::arg("t").noconvert(),
        "logits (N, K), target distribution (N, K) -> (mean loss, dlogits).");
  m.def("relu_forward", &relu_forward<T>, py::arg("x").noconvert(),
        "x (any shape) -> (max(x, 0), x > 0 as bool), as np.maximum(x, 0) and x > 0.");
  m.def("relu_backward", &relu_backward<T>, py::arg("dout").noconvert(), py::arg("mask").noconvert(),
        "dout, bool mask of the same size -> dout * mask, rounded as NumPy.");
  m.def("batchnorm_forward", &batchnorm_forward<T>, py::arg("x").noconvert(), py::arg("gamma").noconvert(),
        py::arg("beta").noconvert(), py::arg("eps"),
        "x (N, D), gamma, beta (D,) -> (y, xc, xn (N, D), std, mu, var (D,)): batch normalisation in training.");
  m.def("batchnorm_backward", &batchnorm_backward<T>, py::arg("dout").noconvert(), py::arg("xc").noconvert(),
        py::arg("xn").noconvert(), py::arg("std").noconvert(), py::arg("gamma").noconvert(),
        "dout, xc, xn (N, D), std, gamma (D,) -> (dx (N, D), dgamma, dbeta (D,)).");
  m.def("adam_update", &adam_update<T>, py::arg("p").noconvert(), py::arg("g").noconvert(),
        py::arg("m").noconvert(), py::arg("v").noconvert(), py::arg("lr"), py::arg("c1"), py::arg("c2"),
        py::arg("eps"),
        "One Adam step in place on p, m, v (same size, C-contiguous): m += c1*(g-m); v += c2*(g*g-v); "
        "p -= lr*m/(sqrt(v)+eps), rounded as NumPy does.");
}

}  // namespace

PYBIND11_MODULE(_cpp, m) {
  // A child forked after OpenMP ran runs its parallel loops on threads of its own
  // (support/parallel.h).
  pthread_atfork(nullptr, nullptr, [] { fastdl::mark_forked_child(); });
  m.doc() = "fastdl C++ kernels";
  m.attr("__version__") = FASTDL_VERSION;
  m.def("affine_forward", &affine_forward, py::arg("x").noconvert(), py::arg("W").noconvert(),
        py::arg("b").noconvert(), py::arg("act"),
        "float32 x (N, D), W (D, M), b (M,), act 0|1|2 -> (N, M): x @ W + b, then ReLU (1) or sigmoid (2).");
  m.def("affine_backward", &affine_backward, py::arg("dout").noconvert(), py::arg("x").noconvert(),
        py::arg("W").noconvert(), py::arg("need_dx"),
        "float32 dout (N, M), x (N, D), W (D, M) -> (dx (N, D) or None, dW = x.T @ dout, db = dout.sum(0)).");
  m.def("dense_available", &fastdl::dense::available, "Whether the CPU runs the affine kernels (AVX-512).");
  m.def("adam_update_many", &adam_update_many, py::arg("ps"), py::arg("gs"), py::arg("ms"), py::arg("vs"),
        py::arg("lr"), py::arg("c1"), py::arg("c2"), py::arg("eps"),
        "adam_update on every (p, g, m, v) of four lists in one call -> True; False, with nothing updated, "
        "unless all are C-contiguous arrays of one float dtype, p, m, v writeable, none overlapping.");
  m.def("build_info", []() {
    py::dict d;
    d["version"] = FASTDL_VERSION;
    d["compiler"] = compiler_string();
#ifdef FASTDL_HAVE_OPENMP
    d["openmp"] = true;
#else
    d["openmp"] = false;
#endif
    d["cpu_level"] = fastdl::cpu_level_name(fastdl::cpu_level());
    return d;
  }, "Version, compiler, OpenMP status and the SIMD level in use (FASTDL_CPU caps it).");
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("n must be >= 1");
    fastdl::set_num_threads(n);
  }, py::arg("n"), "Threads for every parallel kernel (OpenMP); process-wide.");
  m.def("get_num_threads", &fastdl::num_threads, "Threads the parallel kernels use.");
  m.def("fma_probe", [](int64_t iters) {
    if (iters < 0) throw py::value_error("iters must be >= 0");
    py::gil_scoped_release release;
    return fastdl::fma_probe(iters);
  }, py::arg("iters"),
        "Run iters rounds of independent FP32 FMA chains on the calling thread (widest SIMD in use); "
        "returns a checksum.  FLOPs per round: fma_probe_flops_per_iter() (0: no SIMD path).");
  m.def("store_probe", [](py::array_t<float, py::array::c_style> buf, float value) {
    float* p = buf.mutable_data();  // throws if read-only
    const py::ssize_t n = buf.size();
    py::gil_scoped_release release;
    fastdl::store_probe(p, n, value);
  }, py::arg("buf").noconvert(), py::arg("value"),
        "Set every element of the C-contiguous float32 array buf to value with the widest vector "
        "stores in use (one thread): times how fast one core writes memory.");
  m.def("fma_probe_flops_per_iter", &fastdl::fma_probe_flops_per_iter,
        "FP32 FLOPs one round of fma_probe does (0 without an AVX2/AVX-512 path).");
  m.def("cache_info", []() {
    const auto c = fastdl::cache_info();
    py::dict d;
    d["cached_bytes"] = c.cached_bytes;
    d["cached_blocks"] = c.cached_blocks;
    d["limit_bytes"] = c.limit_bytes;
    d["hits"] = c.hits;
    d["misses"] = c.misses;
    return d;
  }, "The block cache behind the kernels' large results: bytes and blocks held for reuse, its limit "
     "(FASTDL_CPP_CACHE_MB, default 1024), and how many allocations it served (hits) or passed on (misses).");
  m.def("set_cache_limit", [](long long bytes) {
    if (bytes < 0) throw py::value_error("bytes must be >= 0");
    fastdl::cache_set_limit(static_cast<size_t>(bytes));
  }, py::arg("bytes"), "Bytes of freed result blocks kept for reuse (0: none); frees any excess now.");
  m.def("cache_clear", &fastdl::cache_clear, "Free every cached block (arrays in use are untouched).");
  bind_kernels<float>(m);
  bind_kernels<double>(m);
}
