// A fixed FMA loop that measures the FP32 FMA rate one core delivers right now.
//
// On a shared machine (a VM whose cores other tenants also use) the rate a
// kernel can reach varies from minute to minute; fastdl bench runs this probe
// before and after its cases so that "% of peak" figures can be read against
// what the core actually delivered.
#pragma once

#include <cstdint>

namespace fastdl {

// Runs `iters` iterations of `chains` independent FMA chains on the widest
// vectors the CPU supports (cpu_level()); returns a value derived from the
// results (so the loop cannot be optimised away).  FLOPs done:
// iters * chains * lanes * 2, see fma_probe_flops_per_iter().
float fma_probe(int64_t iters);
int64_t fma_probe_flops_per_iter();

float fma_probe_avx512(int64_t iters);
float fma_probe_avx2(int64_t iters);

// Sets p[0..n) to v with the widest vector stores in use: the rate one core writes memory,
// the floor of a kernel whose output is as large.  fastdl bench times it on a buffer the
// size of DeepConvNet conv1's output, whose forward is store-bound.
void store_probe(float* p, int64_t n, float v);
void store_probe_avx512(float* p, int64_t n, float v);
void store_probe_avx2(float* p, int64_t n, float v);

}  // namespace fastdl
