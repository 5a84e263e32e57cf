// Shared helpers for fastdl's portable kernel files: thread count and parallel loops.
//
// Rules for kernel files (see also cpu.h):
// - *_avx2.cpp / *_avx512.cpp are compiled with ISA flags.  They must not include this
//   header, the standard library's templates or pybind11: an inline function instantiated
//   there may be picked by the linker for the portable code and fault on an older CPU.
//   They include <immintrin.h>, <cstdint>, <cstddef> and plain declarations only, and
//   export extern functions that work on one plane / row / block.
// - Parallel loops live in the portable files (parallel_for below), which call the
//   per-block SIMD functions chosen once with cpu_level().
// - Kernels run without the GIL: they touch raw pointers only, never Python objects.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#ifdef FASTDL_HAVE_OPENMP
#include <omp.h>
#endif

namespace fastdl {

// Threads used by every parallel loop of fastdl (set_num_threads / OMP_NUM_THREADS).
// A process-wide value, not OpenMP's per-thread ICV: kernels called from any Python
// thread use it.
inline std::atomic<int> g_num_threads{0};

inline int num_threads() {
  int n = g_num_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
#ifdef FASTDL_HAVE_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline void set_num_threads(int n) { g_num_threads.store(n < 1 ? 1 : n, std::memory_order_relaxed); }

// GNU OpenMP cannot run a parallel region in a child forked after its pool started (the
// child waits forever for workers that fork did not copy).  g_omp_started is set by the
// first region; a pthread_atfork child handler (bindings.cpp) then sets g_forked, and from
// there on parallel_for runs the same ranges on std::threads of its own.
inline std::atomic<bool> g_omp_started{false};
inline std::atomic<bool> g_forked{false};
inline thread_local bool t_in_parallel = false;

inline void mark_forked_child() {
  if (g_omp_started.load(std::memory_order_relaxed)) g_forked.store(true, std::memory_order_relaxed);
}

inline bool forked_child() { return g_forked.load(std::memory_order_relaxed); }

// Calls g(t) for t in [0, nt): t = 0 on the calling thread, the others on std::threads
// started for this call (the forked child's replacement for an OpenMP region).
template <class G>
void on_own_threads(int nt, G&& g) {
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(nt - 1));
  for (int t = 1; t < nt; ++t) {
    pool.emplace_back([&g, t] {
      t_in_parallel = true;
      g(t);
    });
  }
  t_in_parallel = true;
  g(0);
  t_in_parallel = false;
  for (auto& th : pool) th.join();
}

// Below this many elements of work a loop runs on the calling thread: waking the pool
// costs more than it saves.
constexpr int64_t kParallelGrain = 1 << 17;

// Calls f(begin, end) on contiguous, disjoint, equal-sized ranges covering [0, n); one range
// per thread, so each thread owns whole items (no two threads write the same output item).
// `work` is the total amount of work in elements, used to decide whether threads pay off.
template <class F>
void parallel_for(int64_t n, int64_t work, F&& f) {
  if (n <= 0) return;
#ifdef FASTDL_HAVE_OPENMP
  int nt = static_cast<int>(std::min<int64_t>(num_threads(), n));
  if (nt > 1 && work >= kParallelGrain && forked_child()) {
    if (!t_in_parallel) {  // a forked child: the same ranges as the OpenMP path
      on_own_threads(nt, [&](int t) {
        const int64_t begin = n * t / nt, end = n * (t + 1) / nt;
        if (begin < end) f(begin, end);
      });
      return;
    }
  } else if (nt > 1 && work >= kParallelGrain && !omp_in_parallel()) {
    g_omp_started.store(true, std::memory_order_relaxed);
#pragma omp parallel num_threads(nt)
    {
      const int64_t t = omp_get_thread_num(), k = omp_get_num_threads();
      const int64_t begin = n * t / k, end = n * (t + 1) / k;
      if (begin < end) f(begin, end);
    }
    return;
  }
#endif
  (void)work;
  f(int64_t{0}, n);
}

}  // namespace fastdl
