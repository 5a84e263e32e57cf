// Runtime CPU feature detection (see cpu.h).
#include "cpu.h"

#include <cstdlib>
#include <cstring>

namespace fastdl {

namespace {

CpuLevel detect() {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  // __builtin_cpu_supports checks CPUID and the OS's XSAVE state (gcc/clang).
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("fma"))
    return CpuLevel::AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuLevel::AVX2;
#endif
  return CpuLevel::Scalar;
}

CpuLevel capped(CpuLevel found) {
  const char* cap = std::getenv("FASTDL_CPU");
  if (cap == nullptr) return found;
  CpuLevel want = found;
  if (std::strcmp(cap, "scalar") == 0) want = CpuLevel::Scalar;
  else if (std::strcmp(cap, "avx2") == 0) want = CpuLevel::AVX2;
  else if (std::strcmp(cap, "avx512") == 0) want = CpuLevel::AVX512;
  return static_cast<int>(want) < static_cast<int>(found) ? want : found;
}

}  // namespace

CpuLevel cpu_level() {
  static const CpuLevel level = capped(detect());
  return level;
}

const char* cpu_level_name(CpuLevel level) {
  switch (level) {
    case CpuLevel::AVX512: return "avx512";
    case CpuLevel::AVX2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace fastdl
