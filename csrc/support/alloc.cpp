// Block cache behind fastdl::cache_alloc (see alloc.h).
#include "alloc.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fastdl {

namespace {

constexpr std::size_t kHeader = 64;                          // keeps the data 64-byte aligned
constexpr std::size_t kHuge = std::size_t(2) << 20;          // one huge page
constexpr std::size_t kHugeMin = std::size_t(4) << 20;       // NumPy's threshold for huge pages
constexpr std::size_t kDefaultLimit = std::size_t(1) << 30;  // 1 GiB

// Stored in the block's first 64 bytes, before the data.
struct Header {
  std::size_t size;  // bytes after the header, a multiple of 4 KiB (the free-list key)
};

struct Cache {
  std::mutex mu;
  std::unordered_map<std::size_t, std::vector<Header*>> free;  // size -> blocks, newest last
  std::size_t cached = 0, blocks = 0, limit = kDefaultLimit;
  std::uint64_t hits = 0, misses = 0;
};

// Never destroyed: arrays may be freed during interpreter shutdown, after static destructors.
Cache& cache() {
  static Cache* c = [] {
    auto* p = new Cache;
    if (const char* e = std::getenv("FASTDL_CPP_CACHE_MB")) {
      char* end = nullptr;
      const unsigned long long mb = std::strtoull(e, &end, 10);
      if (end != e && *end == '\0') p->limit = static_cast<std::size_t>(mb) << 20;
    }
    return p;
  }();
  return *c;
}

// Huge pages from NumPy's threshold on, and from 1 MiB where rounding up to whole huge pages
// wastes at most a quarter: a 1.7 MB array (SimpleConvNet's pooled output, dW, dx at batch
// 100) read a row at a time 17 KB apart touches 100 small pages and one huge page (its step
// 4.47 -> 4.42 ms, alternated runs).
bool huge_block(std::size_t total) {
  if (total >= kHugeMin) return true;
  const std::size_t rounded = (total + kHuge - 1) / kHuge * kHuge;
  return total >= (std::size_t(1) << 20) && rounded * 4 <= total * 5;
}

Header* new_block(std::size_t size) {
  const std::size_t total = kHeader + size;
  const std::size_t align = huge_block(total) ? kHuge : kHeader;
  const std::size_t rounded = (total + align - 1) / align * align;
  void* raw = nullptr;
#if defined(_WIN32)
  raw = _aligned_malloc(rounded, align);
#else
  if (posix_memalign(&raw, align, rounded) != 0) raw = nullptr;
#endif
  if (raw == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (align == kHuge) madvise(raw, rounded, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
  auto* h = static_cast<Header*>(raw);
  h->size = size;
  return h;
}

void release(Header* h) {
#if defined(_WIN32)
  _aligned_free(h);
#else
  std::free(h);
#endif
}

// Frees cached blocks until at most `limit` bytes are cached; caller holds the mutex.
void trim(Cache& c, std::size_t limit) {
  for (auto it = c.free.begin(); it != c.free.end() && c.cached > limit;) {
    auto& v = it->second;
    while (!v.empty() && c.cached > limit) {
      release(v.front());  // oldest first
      v.erase(v.begin());
      c.cached -= it->first;
      --c.blocks;
    }
    it = v.empty() ? c.free.erase(it) : std::next(it);
  }
}

}  // namespace

void* cache_alloc(std::size_t bytes) {
  const std::size_t size = (std::max<std::size_t>(bytes, 1) + 4095) / 4096 * 4096;
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free.find(size);
    if (it != c.free.end() && !it->second.empty()) {
      Header* h = it->second.back();
      it->second.pop_back();
      c.cached -= size;
      --c.blocks;
      ++c.hits;
      return reinterpret_cast<char*>(h) + kHeader;
    }
    ++c.misses;
  }
  return reinterpret_cast<char*>(new_block(size)) + kHeader;
}

void cache_free(void* p) {
  if (p == nullptr) return;
  auto* h = reinterpret_cast<Header*>(static_cast<char*>(p) - kHeader);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.cached + h->size <= c.limit) {
      c.free[h->size].push_back(h);
      c.cached += h->size;
      ++c.blocks;
      return;
    }
  }
  release(h);
}

CacheInfo cache_info() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return {c.cached, c.blocks, c.limit, c.hits, c.misses};
}

void cache_set_limit(std::size_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.limit = bytes;
  trim(c, bytes);
}

void cache_clear() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  trim(c, 0);
}

}  // namespace fastdl
