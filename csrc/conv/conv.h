// Convolution (forward, data and weight gradients), float32 and float64, on raw C-contiguous
// arrays with the shapes and semantics of fastdl.ops (the NumPy reference is the oracle).
// bindings.cpp wraps these for Python.
//
// Where the code is:
//   dispatch.cpp          picks the per-CPU kernel table at run time (cpu_level(), FASTDL_CPU)
//                         and the kernel family per layer (tile or flat, FASTDL_CONV), and
//                         splits the batch over threads (schedule.h)
//   forward.cpp           forward: packed weights, each output pixel's valid taps
//   backward_data.cpp     data gradient: the same gather over dy with flipped weights
//   backward_weights.cpp  weight and bias gradients, per-thread partial sums reduced here
//   conv_pool.cpp         convolution -> ReLU -> max pool a few samples at a time (in L2);
//                         its gradients from the pool's argmax cells alone
//   kernel_table.h        the jobs and the function table the per-CPU kernels fill
//   kernels.h, kernels_*.h  the per-CPU kernel bodies, written once over vector traits
//   kernels_scalar.cpp, kernels_avx2.cpp, kernels_avx512.cpp
//                         those bodies instantiated for one ISA each (ISA flags in CMake)
//
// The work is done by register-tiled kernels: channel-lane tiles over groups of samples (any
// stride; padding taps skipped exactly) and, for stride 1 with few output channels or a
// short reduction, pixel-lane "flat" kernels.  FASTDL_CONV=tile|flat forces one family where
// both apply (for tests); FASTDL_CPU caps the SIMD level (support/cpu.h).
#pragma once

#include <cstdint>

namespace fastdl {
namespace conv {

// x (N, C, H, W), W (FN, C, kh, kw), y (N, FN, OH, OW).
struct Geometry {
  int64_t N, C, H, W, FN, kh, kw, stride, pad, OH, OW;
};

// y = conv(x, w) + bias (bias may be nullptr: no bias); relu: y = max(that, 0) in the same
// store (NaN kept, -0 -> +0: relu_forward's values bit for bit).
template <class T>
void forward(const Geometry& g, const T* x, const T* w, const T* bias, T* y, bool relu = false);

// dx (N, C, H, W) from dy (N, FN, OH, OW) and w.  gate (dy's shape) or nullptr: the
// gradient is dy * (gate > 0) (the backward of a ReLU whose output is gate: relu_backward's
// dy * mask), applied as the kernels copy dy into their own layouts.
template <class T>
void backward_data(const Geometry& g, const T* dy, const T* w, T* dx, const T* gate = nullptr);

// dw (FN, C, kh, kw) and db (FN,) from x and dy (both overwritten); gate as above.
template <class T>
void backward_weights(const Geometry& g, const T* x, const T* dy, T* dw, T* db, const T* gate = nullptr);

// The max pool after a convolution: window ph x pw, stride, pad; output OH x OW.
struct PoolGeometry {
  int64_t ph, pw, stride, pad, OH, OW;
};

// Whether conv_relu_pool_forward keeps each window's argmax as its cell (int8, pool.h's
// kCell*: the pool reads the flat kernels' sums, 2 x 2 windows of stride 2, AVX-512) rather
// than as an index into the convolution's output plane (int64).
template <class T>
bool conv_relu_pool_cells(const Geometry& g, const PoolGeometry& p);

// y (N, FN, p.OH, p.OW) = maxpool2d_forward(relu=true) of forward(x, w, bias), and its argmax
// in the same shape: in cell where conv_relu_pool_cells says so, else in argmax (the other
// one is nullptr).  The unfused kernels' values bit for bit, without the convolution's output
// in memory.
template <class T>
void conv_relu_pool_forward(const Geometry& g, const PoolGeometry& p, const T* x, const T* w, const T* bias,
                            T* y, int64_t* argmax, int8_t* cell);

// The gradients of conv_relu_pool_forward from dy (N, FN, p.OH, p.OW) and its argmax (or
// cell; the other one nullptr): dx (skipped if nullptr), dw, db as backward_data /
// backward_weights of the pooled gradient, to rounding: the sums visit only the argmax cells,
// where the pooled gradient is not zero (a quarter of the cells for 2 x 2 windows), in another
// order.  False if an argmax entry is outside [-1, OH * OW) (a cell outside [-1, 3]).
template <class T>
bool conv_relu_pool_backward(const Geometry& g, const PoolGeometry& p, const T* x, const T* w, const T* dy,
                             const int64_t* argmax, const int8_t* cell, T* dx, T* dw, T* db);

}  // namespace conv
}  // namespace fastdl
