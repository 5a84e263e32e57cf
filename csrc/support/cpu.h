// Runtime CPU feature detection for fastdl's kernel dispatch.
//
// The default build has no -march=native: the kernels_avx2.cpp files are compiled
// with AVX2+FMA, the kernels_avx512.cpp files with AVX-512 (F/CD/BW/DQ/VL) + FMA,
// everything else for the baseline x86-64 (CMakeLists.txt lists them by family).  Callers pick an implementation
// with cpu_level() at run time.
#pragma once

namespace fastdl {

enum class CpuLevel : int { Scalar = 0, AVX2 = 1, AVX512 = 2 };

// Highest SIMD level that both the CPU and the OS (saved register state) support.
// FASTDL_CPU=scalar|avx2|avx512 in the environment caps it (for testing the fallbacks).
CpuLevel cpu_level();

const char* cpu_level_name(CpuLevel level);

}  // namespace fastdl
