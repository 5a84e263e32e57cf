// Convolution (forward, data and weight gradients) for fastdl._cpp.
//
// conv2d_forward(x, W, b, stride, pad) -> (y, state) and
// conv2d_backward(dy, state, need_dx) -> (dx or None, dW, db), float32 and float64, with
// the shapes and semantics of fastdl.ops (the NumPy reference is the oracle).  The work is
// done by register-tiled kernels chosen at run time for the CPU (conv_kernels.h):
// channel-lane tiles over groups of samples (any stride; padding taps skipped exactly) and,
// for stride 1 with few output channels or a short reduction, pixel-lane "flat" kernels.
// FASTDL_CONV=tile|flat forces one family where both apply (for tests); FASTDL_CPU caps
// the SIMD level (cpu.h).
#pragma once

#include <pybind11/pybind11.h>

namespace fastdl {

// Adds conv2d_forward and conv2d_backward to the extension module.
void bind_conv(pybind11::module_& m);

}  // namespace fastdl
