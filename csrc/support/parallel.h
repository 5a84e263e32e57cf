// Shared helpers for fastdl's portable kernel files: thread count and parallel loops.
//
// Rules for kernel files (see also cpu.h):
// - <family>/kernels_avx2.cpp and <family>/kernels_avx512.cpp, the per-CPU kernel bodies,
//   are compiled with ISA flags (CMakeLists.txt lists them).  They must not include this
//   header, the standard library's templates or pybind11: an inline function instantiated
//   there may be picked by the linker for the portable code and fault on an older CPU.
//   They include <immintrin.h>, <cstdint>, <cstddef> and plain declarations only, and
//   export extern functions that work on one plane / row / block.
// - Parallel loops live in the portable files (<family>/dispatch.cpp: parallel_for and
//   for_items below), which call the per-block SIMD functions chosen once with cpu_level().
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

inline bool in_parallel();

// Threads a kernel called from here may use: 1 inside one of fastdl's parallel regions
// (a region's task runs its kernels serially; see conv/conv_pool.cpp).
inline int num_threads() {
  if (in_parallel()) return 1;
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

// Whether the calling thread is already inside one of fastdl's parallel regions.
inline bool in_parallel() {
#ifdef FASTDL_HAVE_OPENMP
  if (omp_in_parallel()) return true;
#endif
  return t_in_parallel;
}

// Calls g(t, k) for t in [0, k) on k <= nt threads: an OpenMP region, or in a forked child
// threads of its own.  Returns false, having called nothing, when threads cannot run
// (no OpenMP, nt < 2, or already inside a region): the caller then runs serially.
template <class G>
bool on_threads(int nt, G&& g) {
#ifdef FASTDL_HAVE_OPENMP
  if (nt < 2 || in_parallel()) return false;
  if (forked_child()) {
    on_own_threads(nt, [&](int t) { g(t, nt); });
    return true;
  }
  g_omp_started.store(true, std::memory_order_relaxed);
#pragma omp parallel num_threads(nt)
  g(omp_get_thread_num(), omp_get_num_threads());
  return true;
#else
  (void)nt;
  (void)g;
  return false;
#endif
}

// Calls f(begin, end) on contiguous, disjoint, equal-sized ranges covering [0, n); one range
// per thread, so each thread owns whole items (no two threads write the same output item).
// `work` is the total amount of work in elements, used to decide whether threads pay off.
template <class F>
void parallel_for(int64_t n, int64_t work, F&& f) {
  if (n <= 0) return;
  const int nt = work >= kParallelGrain ? static_cast<int>(std::min<int64_t>(num_threads(), n)) : 1;
  const bool ran = on_threads(nt, [&](int64_t t, int64_t k) {
    const int64_t begin = n * t / k, end = n * (t + 1) / k;
    if (begin < end) f(begin, end);
  });
  if (!ran) f(int64_t{0}, n);
}

// Runs f(item, thread index) for every item in [0, n) on nt threads.  Static: thread t takes
// items t, t + k, ... (a fixed assignment, for per-thread partial sums that must not depend
// on timing).  Dynamic: threads take the next free item (results that are written once per
// item; keeps both cores busy when one of them is shared with another process).
template <class F>
void for_items(int64_t n, int nt, bool dynamic, F&& f) {
  std::atomic<int64_t> next{0};
  const bool ran = n > 1 && on_threads(nt, [&](int t, int k) {
    if (!dynamic) {
      for (int64_t i = t; i < n; i += k) f(i, t);
      return;
    }
    for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) f(i, t);
  });
  if (!ran)
    for (int64_t i = 0; i < n; ++i) f(i, 0);
}

}  // namespace fastdl
