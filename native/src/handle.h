// Shared declarations of the tsvision addon: how a libtorch tensor travels to JavaScript and back.
#pragma once
#include <napi.h>
#include <ATen/ATen.h>
#include <torch/version.h>

#define TSV_TORCH_GE(maj, min) \
  (TORCH_VERSION_MAJOR > (maj) || (TORCH_VERSION_MAJOR == (maj) && TORCH_VERSION_MINOR >= (min)))

namespace tsv {

// A tensor handle is a JS number naming one slot of the addon's tensor table and its generation (addon.cc). The
// TypeScript Tensor class owns it and releases it deterministically through free(); a FinalizationRegistry
// on the TypeScript side is the safety net for tensors that escape every scope.
Napi::Value wrap(Napi::Env env, at::Tensor t);           // undefined tensor -> null
const at::Tensor& unwrap(const Napi::Value& v, const char* what);  // throws a TypeError naming `what`
const at::Tensor* peek(const Napi::Value& v);           // nullptr if not a live handle
bool isHandle(const Napi::Value& v);                     // a number in the handle range (live or not)
std::string describe(const at::Tensor& t);               // "Tensor[2, 3] float32 cpu"

at::ScalarType parseDtype(const std::string& s);         // "float32" -> at::kFloat; throws on unknown
std::string dtypeName(at::ScalarType s);

// Runs `body`, turning every libtorch failure into a JS Error whose message starts with `op`.
template <typename F>
Napi::Value guarded(Napi::Env env, const char* op, F&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, std::string(op) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string(op) + ": " + e.what());
  }
}

// Wraps an exported function so that no C++ exception can cross into Node (which would abort the process).
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value safe(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(info.Env(), e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  } catch (...) {
    throw Napi::Error::New(info.Env(), "unknown native error");
  }
}

void installAllocator();        // routes libtorch's CPU allocations through mimalloc where available
const char* allocatorName();
// The large-block cache's counters since start (misses = blocks taken from the system), and its state now.
struct AllocatorStats {
  uint64_t hits = 0, misses = 0, overflows = 0;
  size_t ownedBytes = 0, cachedBytes = 0, cachedBlocks = 0, cap = 0;
};
AllocatorStats allocatorStats();
void initDispatch(Napi::Env env, Napi::Object exports);
void initDistributed(Napi::Env env, Napi::Object exports);
void initProfiler(Napi::Env env, Napi::Object exports);
Napi::Object Init(Napi::Env env, Napi::Object exports);

}  // namespace tsv
