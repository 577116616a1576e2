// libtorch's default CPU allocator returns large blocks to the OS on every free, so a training loop that
// frees and re-allocates the same activations each step pays for fresh pages every time. mimalloc keeps
// them: in a probe, a conv-net backward went from 79 ms (PyTorch's own allocator) to 54 ms.
#include "handle.h"

#include <c10/core/CPUAllocator.h>

#ifdef TSV_MIMALLOC
#include <mimalloc.h>

namespace tsv {
namespace {
// 64-byte alignment, as c10's alloc_cpu guarantees, so vectorized kernels see the same layout.
constexpr size_t kAlignment = 64;

void miDelete(void* p) { mi_free(p); }

struct MiAllocator final : at::Allocator {
#if TSV_TORCH_GE(2, 3)
  at::DataPtr allocate(size_t n) override {
#else
  at::DataPtr allocate(size_t n) const override {
#endif
    void* p = mi_malloc_aligned(n == 0 ? 1 : n, kAlignment);
    if (!p) throw std::bad_alloc();
    return {p, p, &miDelete, at::Device(at::DeviceType::CPU)};
  }
  at::DeleterFnPtr raw_deleter() const override { return &miDelete; }
#if TSV_TORCH_GE(2, 3)
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
#endif
};
MiAllocator allocator;
bool installed = false;
}  // namespace

void installAllocator() {
  if (std::getenv("TSVISION_ALLOCATOR") && std::string(std::getenv("TSVISION_ALLOCATOR")) == "default") return;
  c10::SetCPUAllocator(&allocator, /*priority=*/100);
  installed = true;
}
const char* allocatorName() { return installed ? "mimalloc" : "libtorch default"; }
}  // namespace tsv

#else
namespace tsv {
void installAllocator() {}
const char* allocatorName() { return "libtorch default (built without mimalloc)"; }
}  // namespace tsv
#endif
