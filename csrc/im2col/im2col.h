// im2col / col2im for NCHW input: col rows (n, oy, ox), columns (c, ky, kx).
#pragma once

#include <cstdint>

namespace fastdl {

struct Window {
  int64_t N, C, H, W;     // input shape
  int64_t kh, kw, stride, pad;
  int64_t OH, OW;         // output size: (H + 2*pad - kh) / stride + 1, likewise OW
};

// x (N, C, H, W) -> col (N*OH*OW, C*kh*kw); padding reads as 0.  Parallel over samples.
template <class T>
void im2col(const T* x, T* col, const Window& w);

// col (N*OH*OW, C*kh*kw) -> x (N, C, H, W), overlapping taps summed; each thread owns whole
// samples, so no two threads write the same cell.
template <class T>
void col2im(const T* col, T* x, const Window& w);

// One sample with AVX-512 masked loads/stores (kernels_avx512.cpp); kw <= 16 (float), 8 (double).
void im2col_sample_f32_avx512(const float* x, float* col, const Window& w);
void im2col_sample_f64_avx512(const double* x, double* col, const Window& w);
void col2im_sample_f32_avx512(const float* col, float* x, const Window& w);
void col2im_sample_f64_avx512(const double* col, double* x, const Window& w);

}  // namespace fastdl
