// Output buffers for the kernels' large results, reused across calls.
//
// A training step allocates the same large arrays (activations, im2col buffers, gradients)
// every iteration.  Left to malloc, each one above glibc's mmap threshold comes back from
// the kernel as fresh pages: ~1,200 page faults and a zeroing pass for a 5 MB conv output,
// which took longer than the convolution itself.  Here a freed block is kept in a
// size-keyed free list and handed out again (most recently freed first, so it is likely
// still in cache), up to a byte limit; blocks of 4 MiB and more are asked for huge pages,
// as NumPy does for its own large arrays, and so are blocks from 1 MiB that whole huge pages
// hold with at most a quarter to spare (alloc.cpp: huge_block).
//
// Thread-safe (one mutex; calls are per array, not per element).  Portable code: no ISA
// flags, no Python.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastdl {

// Arrays below this size go to NumPy's allocator as usual.
constexpr std::size_t kCacheMinBytes = std::size_t(1) << 18;

// A 64-byte aligned block of at least `bytes` bytes (throws std::bad_alloc).
void* cache_alloc(std::size_t bytes);
// Returns a block from cache_alloc: kept for reuse while the cache is under its limit.
void cache_free(void* p);

struct CacheInfo {
  std::size_t cached_bytes, cached_blocks, limit_bytes;
  std::uint64_t hits, misses;
};
CacheInfo cache_info();
// Bytes the free lists may hold (0: keep nothing).  Frees what is over the new limit.
void cache_set_limit(std::size_t bytes);
// Frees every cached block (live arrays are untouched).
void cache_clear();

}  // namespace fastdl
