// Max pooling: forward scans each window directly and stores int64 argmax; backward scatters.
//
// Contract (DESIGN.md): padding acts as -inf, ties go to the first maximum in row-major
// window order, a NaN wins (the first one) and propagates, a window whose real cells are
// all -inf points at its first real cell.  argmax holds iy*W + ix in the unpadded plane.
#pragma once

#include <cstdint>

namespace fastdl {

// x (NC, H, W) -> y, argmax (NC, OH, OW); T is float or double.
// relu: the fused maxpool(relu(x)).  y = max(window max, 0) (NaN kept), which is the pool of
// relu(x), and argmax = -1 where that maximum is not > 0: relu's mask is 0 there, so no
// gradient flows (argmax of a window with a positive maximum is the unfused one).  Each plane's
// outputs are fixed up while in cache: one pass over x, no mask of x's size.
// argmax == nullptr (inference): no argmax array, each thread's plane goes to a scratch row.
template <class T>
void maxpool2d_forward(const T* x, T* y, int64_t* argmax, int64_t NC, int64_t H, int64_t W,
                       int64_t ph, int64_t pw, int64_t stride, int64_t pad, int64_t OH, int64_t OW,
                       bool relu = false);

// dy, argmax (NC, OH, OW) -> dx (NC, H, W).  Returns false (dx then holds no meaning) if an
// argmax entry lies outside [0, H*W) (relu: outside [-1, H*W), -1 passing nothing on); the
// caller raises.
template <class T>
bool maxpool2d_backward(const T* dy, const int64_t* argmax, T* dx, int64_t NC, int64_t H,
                        int64_t W, int64_t ph, int64_t pw, int64_t stride, int64_t pad,
                        int64_t OH, int64_t OW, bool relu = false);

// SIMD fast paths for 2x2 windows, stride 2, no padding, float32, one plane at a time
// (kernels_avx2.cpp / kernels_avx512.cpp).  OH = H/2, OW = W/2 (rounded down).  relu (the
// AVX-512 ones): the fused ReLU of maxpool2d_forward above, in the same pass.
void maxpool2x2_forward_f32_avx2(const float* x, float* y, int64_t* argmax, int64_t H, int64_t W);
void maxpool2x2_forward_f32_avx512(const float* x, float* y, int64_t* argmax, int64_t H, int64_t W, bool relu);
void maxpool2x2_forward_f64_avx512(const double* x, double* y, int64_t* argmax, int64_t H, int64_t W, bool relu);
// The argmax of a 2x2 window as its cell (one byte where a plane index takes eight): window
// (oy, ox)'s cell c is pixel (2 oy + c / 2, 2 ox + c % 2); -1 where the ReLU stopped it.
constexpr int kCellRight = 1, kCellDown = 2, kCellDownRight = 3;
// The same with relu, on the plane z = x + b whose rows are ldx apart (x + b rounded as
// z's own store would be): the convolution -> ReLU -> pool forward pools its sums from the
// convolution's buffer (conv_pool.cpp).  cell (OH, OW): each window's argmax cell, or -1.
void maxpool2x2_bias_relu_f32_avx512(const float* x, int64_t ldx, float b, float* y, int8_t* cell, int64_t H,
                                     int64_t W);
void maxpool2x2_bias_relu_f64_avx512(const double* x, int64_t ldx, double b, double* y, int8_t* cell,
                                     int64_t H, int64_t W);
// Writes the whole plane dx (H, W).  Returns false, with dx partly written, if some argmax
// entry is not inside its own window (relu: nor -1); the caller then redoes the plane with a
// scatter.
bool maxpool2x2_backward_f32_avx512(const float* dy, const int64_t* argmax, float* dx, int64_t H, int64_t W,
                                    bool relu);

}  // namespace fastdl
