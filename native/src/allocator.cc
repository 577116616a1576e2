// The CPU allocator. libtorch's default returns every block to the system on free, so a training loop that
// frees and re-allocates the same activations each step pays for fresh pages (page faults, zeroing) every
// time. Two layers fix that:
//  - small blocks (< 64 KiB) come from mimalloc, whose free lists keep them warm;
//  - large blocks (activations, im2col buffers) are cached by size class, as PyTorch's CUDA caching
//    allocator does on the GPU, up to a cap (TSVISION_CPU_CACHE_MB; default a quarter of physical memory, at
//    least 2048 MB: Xception's batch-8 training step frees ~3 GB per step, and with a 2 GB cap the excess
//    went back to glibc and was page-faulted in again every step: 3.1 s vs 2.3 s per step), over glibc. Measured on a
//    Fashion-MNIST CNN step (batch 128): mimalloc alone ran 3x slower than glibc because its huge blocks
//    went back to the OS each step; with the cache, no page is returned while the working set is stable.
#include "handle.h"

#include <c10/core/CPUAllocator.h>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>

#ifdef TSV_MIMALLOC
#include <mimalloc.h>
#endif

namespace tsv {
namespace {
// 64-byte alignment, as c10's alloc_cpu guarantees, so vectorized kernels see the same layout.
constexpr size_t kAlignment = 64;
constexpr size_t kLarge = size_t(1) << 16;

// Small blocks: mimalloc. Large blocks: glibc, whose mmap threshold adapts to the workload; mimalloc hands
// huge blocks straight back to the OS, which made a cache-overflowing Xception training step 5x slower.
void* smallAlloc(size_t n) {
#ifdef TSV_MIMALLOC
  return mi_malloc_aligned(n, kAlignment);
#else
  void* p = nullptr;
  return posix_memalign(&p, kAlignment, n) == 0 ? p : nullptr;
#endif
}

void smallFree(void* p) {
#ifdef TSV_MIMALLOC
  mi_free(p);
#else
  std::free(p);
#endif
}

// Blocks of 2 MiB and more are aligned to 2 MiB and marked for transparent huge pages (where the kernel
// has them in `madvise` or `always` mode): a fresh block then costs one fault per 2 MiB instead of one per
// 4 KiB. In bench/alloc: 20x fewer faults and a 16-24% faster first PSPNet call in a fresh process (a
// server's cold start); steady state unchanged within this machine's noise; peak RSS +2%.
// TSVISION_HUGE_PAGES=0 turns this off.
constexpr size_t kHuge = size_t(2) << 20;
bool hugePages = false;

// Whether the kernel grants huge pages on advice: /sys/kernel/mm/transparent_hugepage/enabled reads
// "always [madvise] never" with the active mode in brackets.
bool thpAvailable() {
  FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (!f) return false;
  char buf[128] = {0};
  size_t got = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  std::string mode(buf, got);
  return mode.find("[always]") != std::string::npos || mode.find("[madvise]") != std::string::npos;
}

void* sysAlloc(size_t n) {
  void* p = nullptr;
  if (hugePages && n >= kHuge) {
    if (posix_memalign(&p, kHuge, n) != 0) return nullptr;
    madvise(p, n, MADV_HUGEPAGE);  // advice only: failure leaves ordinary pages
    return p;
  }
  return posix_memalign(&p, kAlignment, n) == 0 ? p : nullptr;
}

void sysFree(void* p) { std::free(p); }

// Size classes: four per power of two (at most 25% slack), so a block freed by one step fits the next.
size_t sizeClass(size_t n) {
  size_t top = size_t(1) << (63 - __builtin_clzll(n));
  size_t step = top >= 4 ? top / 4 : 1;
  return (n + step - 1) / step * step;
}

struct Cache {
  std::mutex mu;
  std::unordered_map<void*, size_t> sizes;  // every large block we own, cached or in use
  std::multimap<size_t, void*> free;        // cached blocks by size class
  size_t cached = 0;
  size_t cap = 0;
  AllocatorStats stats;  // counters for allocatorStats(); guarded by mu

  void* take(size_t cls) {
    std::lock_guard<std::mutex> lock(mu);
    // Most recently freed first (LIFO): its pages are resident and likely still in the CPU's caches. The
    // oldest blocks of a class may never have been touched beyond a smaller tensor's bytes, so handing
    // them out in turn (FIFO) re-faulted ~20 MB per call in ICNet after PSPNet's garbage was freed.
    auto range = free.equal_range(cls);
    if (range.first == range.second) {
      stats.misses++;
      return nullptr;
    }
    auto it = std::prev(range.second);
    stats.hits++;
    void* p = it->second;
    free.erase(it);
    cached -= cls;
    return p;
  }

  void adopt(void* p, size_t cls) {
    std::lock_guard<std::mutex> lock(mu);
    sizes[p] = cls;
    stats.ownedBytes += cls;
  }

  // Returns false if p is not a large block of ours.
  bool give(void* p) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = sizes.find(p);
    if (it == sizes.end()) return false;
    if (cached + it->second <= cap) {
      free.emplace(it->second, p);
      cached += it->second;
    } else {
      stats.overflows++;
      stats.ownedBytes -= it->second;
      sizes.erase(it);
      sysFree(p);
    }
    return true;
  }

  void trim() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [cls, p] : free) {
      stats.ownedBytes -= cls;
      sizes.erase(p);
      sysFree(p);
    }
    free.clear();
    cached = 0;
  }
};
// Never destroyed: tensors may still be freed during process exit (static destructors of other libraries
// run in no defined order), and their deleters must find the cache alive.
Cache& cache = *new Cache;

void smallDelete(void* p) { smallFree(p); }
void largeDelete(void* p) {
  if (!cache.give(p)) smallFree(p);  // not a large block of ours: it came from smallAlloc (raw_allocate)
}
// For raw_allocate/raw_deallocate users, which get one deleter for blocks of any size.
void anyDelete(void* p) { largeDelete(p); }

struct CachingAllocator final : at::Allocator {
#if TSV_TORCH_GE(2, 3)
  at::DataPtr allocate(size_t n) override {
#else
  at::DataPtr allocate(size_t n) const override {
#endif
    if (n < kLarge) {
      void* p = smallAlloc(n == 0 ? 1 : n);
      if (!p) throw std::bad_alloc();
      return {p, p, &smallDelete, at::Device(at::DeviceType::CPU)};
    }
    size_t cls = sizeClass(n);
    void* p = cache.take(cls);
    if (!p) {
      p = sysAlloc(cls);
      if (!p) {  // out of memory: give the cache back to the system and try once more
        cache.trim();
        p = sysAlloc(cls);
        if (!p) throw std::bad_alloc();
      }
      cache.adopt(p, cls);
    }
    return {p, p, &largeDelete, at::Device(at::DeviceType::CPU)};
  }
  at::DeleterFnPtr raw_deleter() const override { return &anyDelete; }
#if TSV_TORCH_GE(2, 3)
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#endif
};
CachingAllocator& allocator = *new CachingAllocator;  // never destroyed, for the same reason
bool installed = false;
}  // namespace

void installAllocator() {
  const char* choice = std::getenv("TSVISION_ALLOCATOR");
  if (choice && std::string(choice) == "default") return;
  const char* mb = std::getenv("TSVISION_CPU_CACHE_MB");
  const unsigned long long quarter = static_cast<unsigned long long>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE) / 4;
  cache.cap = mb ? std::strtoull(mb, nullptr, 10) << 20 : std::max(2048ull << 20, quarter);
  const char* huge = std::getenv("TSVISION_HUGE_PAGES");
  hugePages = !(huge && std::string(huge) == "0") && thpAvailable();
  c10::SetCPUAllocator(&allocator, /*priority=*/100);
  installed = true;
}

AllocatorStats allocatorStats() {
  std::lock_guard<std::mutex> lock(cache.mu);
  AllocatorStats s = cache.stats;
  s.cachedBytes = cache.cached;
  s.cachedBlocks = cache.free.size();
  s.cap = cache.cap;
  return s;
}

const char* allocatorName() {
#ifdef TSV_MIMALLOC
  if (!installed) return "libtorch default";
  return hugePages ? "mimalloc + large-block cache (huge pages)" : "mimalloc + large-block cache";
#else
  if (!installed) return "libtorch default";
  return hugePages ? "large-block cache over the system allocator (huge pages)" : "large-block cache over the system allocator";
#endif
}

}  // namespace tsv
