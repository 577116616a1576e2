// The tsvision addon: tensor handles, data in and out, autograd, devices and runtime settings. Operators
// themselves go through dispatch.cc.
#include "handle.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cstring>
#include <deque>
#include <thread>

namespace tsv {

namespace {
std::thread::id mainThread;
// Whether denormals are flushed to zero (set once at load; see InitImpl).
bool flushDenormals = false;

// Tensors live in a slot table; JavaScript holds numbers that encode (slot, generation). The generation makes
// a stale handle (used after free()) a clear error instead of an alias of whatever tensor reuses the slot.
// A deque keeps references stable while the table grows.
struct Slot {
  at::Tensor t;
  uint32_t gen = 0;
  uint32_t idx = 0;
  // CPU bytes reported to V8 (napi_adjust_external_memory), 0 when not reported; see GcOwned.
  int64_t reported = 0;
};
// Never destroyed: at process exit the tensors still held need not be freed one by one, and freeing them
// from a static destructor could run after the allocator or libtorch state they need is gone.
std::deque<Slot>& slots = *new std::deque<Slot>;
std::vector<uint32_t>& freeSlots = *new std::vector<uint32_t>;

// A handle is the JS number 2^52 + gen·2^24 + idx, in [2^52, 2^53): exact in a double, and out of the range
// of sizes and scalars, so a stray number is not taken for a tensor. A number, unlike the napi External that
// handles were until 2026-11-28, is no heap object for V8 to allocate on every op and scavenge later
// (BENCHMARKS.md, Engine: the per-op overhead before and after).
constexpr double kHandleBase = 4503599627370496.0;  // 2^52
constexpr uint32_t kGenMask = (1u << 28) - 1;

inline double encode(uint32_t idx, uint32_t gen) {
  return kHandleBase + static_cast<double>(gen & kGenMask) * 16777216.0 + static_cast<double>(idx);
}

// Reads a handle's (slot, generation) word, once; false where v is not a number in the handle range.
bool handleWord(const Napi::Value& v, uint64_t& word) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= kHandleBase && d < 2 * kHandleBase)) return false;
  word = static_cast<uint64_t>(d - kHandleBase);
  return true;
}

// The live slot a handle's word names, or nullptr if it was freed.
Slot* liveSlot(uint64_t word) {
  uint64_t idx = word & 0xffffffu;
  auto gen = static_cast<uint32_t>(word >> 24);
  if (idx >= slots.size()) return nullptr;
  Slot& s = slots[idx];
  return (s.gen & kGenMask) == gen && s.t.defined() ? &s : nullptr;
}

// The live slot of a handle, or nullptr if it was freed; a TypeError naming `what` if v is no handle at all.
Slot* handleSlot(const Napi::Value& v, const char* what) {
  uint64_t word;
  if (!handleWord(v, word)) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a Tensor");
  return liveSlot(word);
}
}  // namespace

bool isHandle(const Napi::Value& v) {
  uint64_t word;
  return handleWord(v, word);
}

const at::Tensor* peek(const Napi::Value& v) {
  uint64_t word;
  Slot* s = handleWord(v, word) ? liveSlot(word) : nullptr;
  return s ? &s->t : nullptr;
}

namespace {
const struct {
  const char* name;
  at::ScalarType type;
} kDtypes[] = {
    {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16},
    {"int64", at::kLong},    {"int32", at::kInt},      {"int16", at::kShort},  {"int8", at::kChar},
    {"uint8", at::kByte},    {"bool", at::kBool},
};
}  // namespace

at::ScalarType parseDtype(const std::string& s) {
  for (const auto& d : kDtypes)
    if (s == d.name) return d.type;
  throw std::invalid_argument("unknown dtype '" + s + "'");
}

std::string dtypeName(at::ScalarType s) {
  for (const auto& d : kDtypes)
    if (s == d.type) return d.name;
  return c10::toString(s);
}

std::string describe(const at::Tensor& t) {
  std::string s = "Tensor[";
  auto sizes = t.sizes();
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "] " + dtypeName(t.scalar_type()) + " " + t.device().str();
}

Napi::Value wrap(Napi::Env env, at::Tensor t) {
  if (!t.defined()) return env.Null();
  uint32_t idx;
  if (!freeSlots.empty()) {
    idx = freeSlots.back();
    freeSlots.pop_back();
  } else {
    idx = static_cast<uint32_t>(slots.size());
    if (idx > 0xffffffu) throw Napi::RangeError::New(env, "more than 2^24 live tensors");
    slots.emplace_back();
    slots.back().idx = idx;
  }
  Slot& s = slots[idx];
  s.t = std::move(t);
  s.reported = 0;
  return Napi::Number::New(env, encode(idx, s.gen));
}

const at::Tensor& unwrap(const Napi::Value& v, const char* what) {
  Slot* s = handleSlot(v, what);
  if (!s) throw Napi::Error::New(v.Env(), std::string(what) + ": tensor used after dispose()");
  return s->t;
}

namespace {

// free(h): drops this handle's reference now instead of at garbage collection. Freeing twice is harmless.
Napi::Value Free(const Napi::CallbackInfo& info) {
  Slot* s = handleSlot(info[0], "free");
  if (s) {
    if (s->reported) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -s->reported);
    s->reported = 0;
    s->t = at::Tensor();
    s->gen++;
    freeSlots.push_back(s->idx);
  }
  return info.Env().Undefined();
}

// gcOwned(h): the tensor is now freed only by the garbage collector (no scope owns it), so tell V8 about its
// CPU bytes: that is what makes V8 collect — and so free — such tensors when they pile up. Scoped tensors are
// not reported: they are freed deterministically, and reporting them made V8 start a full mark-compact every
// ~30 ms during batch-1 ResNet-50 inference (external-memory pressure), whose concurrent marking thread took
// a core from libtorch's OpenMP team (60 vs 44 ms per forward on 2 cores).
Napi::Value GcOwned(const Napi::CallbackInfo& info) {
  Slot* s = handleSlot(info[0], "gcOwned");
  if (s && !s->reported && s->t.defined() && s->t.device().is_cpu()) {
    int64_t bytes = static_cast<int64_t>(s->t.numel() * s->t.element_size());
    if (bytes > 4096) {
      s->reported = bytes;
      Napi::MemoryManagement::AdjustExternalMemory(info.Env(), bytes);
    }
  }
  return info.Env().Undefined();
}

std::vector<int64_t> toShape(const Napi::Value& v) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), "shape must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) throw Napi::TypeError::New(v.Env(), "shape must be an array of integers");
    double d = e.As<Napi::Number>().DoubleValue();
    if (d < 0 || d != std::floor(d)) throw Napi::RangeError::New(v.Env(), "shape entries must be integers >= 0");
    out[i] = static_cast<int64_t>(d);
  }
  return out;
}

// fromBytes(typedArray, shape, dtype, device?): copies raw element bytes into a new tensor.
Napi::Value FromBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "fromBytes: data must be a TypedArray");
  auto ta = info[0].As<Napi::TypedArray>();
  auto shape = toShape(info[1]);
  return guarded(env, "fromBytes", [&]() -> Napi::Value {
    auto dtype = parseDtype(info[2].As<Napi::String>().Utf8Value());
    auto t = at::empty(shape, at::TensorOptions().dtype(dtype));
    size_t need = t.numel() * t.element_size();
    if (ta.ByteLength() != need) {
      throw std::invalid_argument("data has " + std::to_string(ta.ByteLength()) + " bytes but shape and dtype need " +
                                  std::to_string(need));
    }
    auto* src = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    if (need) std::memcpy(t.data_ptr(), src, need);
    if (info.Length() > 3 && info[3].IsString()) {
      c10::Device dev(info[3].As<Napi::String>().Utf8Value());
      if (dev != t.device()) t = t.to(dev);
    }
    return wrap(env, std::move(t));
  });
}

// toBytes(h): a copy of the elements, contiguous, in a fresh ArrayBuffer (from any device).
Napi::Value ToBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t0 = unwrap(info[0], "toBytes");
  return guarded(env, "toBytes", [&]() -> Napi::Value {
    at::Tensor t = t0.detach().to(at::kCPU).contiguous();
    size_t n = t.numel() * t.element_size();
    auto buf = Napi::ArrayBuffer::New(env, n);
    if (n) std::memcpy(buf.Data(), t.data_ptr(), n);
    return buf;
  });
}

Napi::Value Meta(const Napi::CallbackInfo& info) {
  // meta(h) -> [shape, dtype, device, requiresGrad]: one crossing for what the TS side caches lazily.
  Napi::Env env = info.Env();
  const at::Tensor& t = unwrap(info[0], "meta");
  auto sizes = t.sizes();
  Napi::Array shape = Napi::Array::New(env, sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) shape.Set(i, Napi::Number::New(env, static_cast<double>(sizes[i])));
  Napi::Array out = Napi::Array::New(env, 4);
  out.Set(0u, shape);
  out.Set(1u, dtypeName(t.scalar_type()));
  out.Set(2u, t.device().str());
  out.Set(3u, Napi::Boolean::New(env, t.requires_grad()));
  return out;
}

Napi::Value Layout(const Napi::CallbackInfo& info) {
  // layout(h) -> 'strided' | 'mkldnn' | 'sparse' | ...: oneDNN-layout inference converts only what needs it.
  const at::Tensor& t = unwrap(info[0], "layout");
  switch (t.layout()) {
    case at::kStrided: return Napi::String::New(info.Env(), "strided");
    case at::kMkldnn: return Napi::String::New(info.Env(), "mkldnn");
    default: return Napi::String::New(info.Env(), "sparse");
  }
}

Napi::Value DataPtr(const Napi::CallbackInfo& info) {
  // dataPtr(h) -> bigint, PyTorch's data_ptr(): which memory a tensor uses (sharing, allocator reuse).
  const at::Tensor& t = unwrap(info[0], "dataPtr");
  if (t.layout() != at::kStrided) throw std::runtime_error("dataPtr: a tensor in the oneDNN or sparse layout has no single data pointer");
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(t.data_ptr())));
}

Napi::Value Shape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = unwrap(info[0], "shape");
  auto sizes = t.sizes();
  Napi::Array shape = Napi::Array::New(env, sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) shape.Set(i, Napi::Number::New(env, static_cast<double>(sizes[i])));
  return shape;
}

Napi::Value Item(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = unwrap(info[0], "item");
  return guarded(env, "item", [&]() -> Napi::Value {
    if (t.numel() != 1) throw std::invalid_argument("item() needs exactly one element, got " + describe(t));
    if (t.scalar_type() == at::kBool) return Napi::Boolean::New(env, t.item<bool>());
    return Napi::Number::New(env, t.item<double>());
  });
}

Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = unwrap(info[0], "requiresGrad_");
  return guarded(env, "requiresGrad_", [&]() -> Napi::Value {
    t.requires_grad_(info[1].As<Napi::Boolean>().Value());
    return env.Undefined();
  });
}

Napi::Value Grad(const Napi::CallbackInfo& info) {
  const at::Tensor& t = unwrap(info[0], "grad");
  return wrap(info.Env(), t.grad());
}

Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = unwrap(info[0], "setGrad");
  return guarded(env, "setGrad", [&]() -> Napi::Value {
    if (info[1].IsNull() || info[1].IsUndefined()) t.mutable_grad() = at::Tensor();
    else t.mutable_grad() = unwrap(info[1], "grad");
    return env.Undefined();
  });
}

Napi::Value IsLeaf(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), unwrap(info[0], "isLeaf").is_leaf());
}

Napi::Value RetainGrad(const Napi::CallbackInfo& info) {
  const at::Tensor& t = unwrap(info[0], "retainGrad");
  return guarded(info.Env(), "retainGrad", [&]() -> Napi::Value {
    t.retain_grad();
    return info.Env().Undefined();
  });
}

// backward(h, grad?, retainGraph?, createGraph?)
Napi::Value Backward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = unwrap(info[0], "backward");
  return guarded(env, "backward", [&]() -> Napi::Value {
    at::Tensor g;
    if (info.Length() > 1 && isHandle(info[1])) g = unwrap(info[1], "backward gradient");
    c10::optional<bool> retain;
    if (info.Length() > 2 && info[2].IsBoolean()) retain = info[2].As<Napi::Boolean>().Value();
    bool create = info.Length() > 3 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
    t.backward(g, retain, create);
    return env.Undefined();
  });
}

// autogradGrad(outputs[], inputs[], gradOutputs[]|null, retainGraph, createGraph) -> grads (torch.autograd.grad)
Napi::Value AutogradGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto list = [&](const Napi::Value& v) {
    std::vector<at::Tensor> out;
    if (v.IsArray()) {
      auto a = v.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(unwrap(a.Get(i), "autograd.grad"));
    }
    return out;
  };
  auto outputs = list(info[0]);
  auto inputs = list(info[1]);
  auto gradOutputs = list(info[2]);
  return guarded(env, "autograd.grad", [&]() -> Napi::Value {
    c10::optional<bool> retain;
    if (info[3].IsBoolean()) retain = info[3].As<Napi::Boolean>().Value();
    bool create = info[4].IsBoolean() && info[4].As<Napi::Boolean>().Value();
    auto grads = torch::autograd::grad(outputs, inputs, gradOutputs, retain, create, /*allow_unused=*/true);
    Napi::Array out = Napi::Array::New(env, grads.size());
    for (size_t i = 0; i < grads.size(); ++i) out.Set(i, wrap(env, grads[i]));
    return out;
  });
}

// registerHook(h, fn): fn(gradHandle) -> gradHandle | null, called during backward. Only on the JS thread:
// CPU backward runs there; CUDA backward runs on device threads, where calling JavaScript is impossible.
Napi::Value RegisterHook(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = unwrap(info[0], "registerHook");
  if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "registerHook: hook must be a function");
  auto fn = std::make_shared<Napi::FunctionReference>(Napi::Persistent(info[1].As<Napi::Function>()));
  return guarded(env, "registerHook", [&]() -> Napi::Value {
    unsigned pos = t.register_hook([fn, env](const at::Tensor& grad) -> at::Tensor {
      if (std::this_thread::get_id() != mainThread) {
        throw std::runtime_error("gradient hooks run only when backward runs on the JavaScript thread (CPU)");
      }
      Napi::HandleScope scope(env);
      Napi::Value r = fn->Call({wrap(env, grad)});
      if (isHandle(r)) return unwrap(r, "hook result");
      return at::Tensor();
    });
    return Napi::Number::New(env, pos);
  });
}

Napi::Value RemoveHook(const Napi::CallbackInfo& info) {
  const at::Tensor& t = unwrap(info[0], "removeHook");
  return guarded(info.Env(), "removeHook", [&]() -> Napi::Value {
    t.remove_hook(info[1].As<Napi::Number>().Uint32Value());
    return info.Env().Undefined();
  });
}

Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  bool prev = at::GradMode::is_enabled();
  at::GradMode::set_enabled(info[0].As<Napi::Boolean>().Value());
  return Napi::Boolean::New(info.Env(), prev);
}

Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled());
}

// Autocast (PyTorch's torch.autocast): while enabled for a device type, the dispatcher runs the ops on
// autocast's lists in the lower precision (convolutions, matmuls) or float32 (losses, reductions). State is
// thread-local, as in PyTorch; enter/exit mirror torch.autocast.__enter__/__exit__.
static void setAutocast(bool cuda, bool enabled, at::ScalarType dtype) {
  if (cuda) {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
}

// enterAutocast(device 'cpu'|'cuda', enabled, dtype) -> [previous enabled, previous dtype]
Napi::Value EnterAutocast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, "autocast", [&]() -> Napi::Value {
    bool cuda = info[0].As<Napi::String>().Utf8Value() == "cuda";
    bool enabled = info[1].As<Napi::Boolean>().Value();
    at::ScalarType dtype = parseDtype(info[2].As<Napi::String>().Utf8Value());
    bool prev = cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
    at::ScalarType prevDtype = cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
    setAutocast(cuda, enabled, dtype);
    at::autocast::increment_nesting();
    Napi::Array r = Napi::Array::New(env, 2);
    r.Set(0u, Napi::Boolean::New(env, prev));
    r.Set(1u, Napi::String::New(env, dtypeName(prevDtype)));
    return r;
  });
}

// exitAutocast(device, previous enabled, previous dtype): restores them; the outermost exit drops the cache
// of casted weights (as torch.autocast does), so that updated weights are cast afresh.
Napi::Value ExitAutocast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, "autocast", [&]() -> Napi::Value {
    bool cuda = info[0].As<Napi::String>().Utf8Value() == "cuda";
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    bool prev = info[1].As<Napi::Boolean>().Value();
    at::ScalarType prevDtype = parseDtype(info[2].As<Napi::String>().Utf8Value());
    setAutocast(cuda, prev, prevDtype);
    return env.Undefined();
  });
}

Napi::Value IsAutocastEnabled(const Napi::CallbackInfo& info) {
  bool cuda = info[0].As<Napi::String>().Utf8Value() == "cuda";
  return Napi::Boolean::New(info.Env(), cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled());
}

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  double s = info[0].As<Napi::Number>().DoubleValue();
  at::manual_seed(static_cast<uint64_t>(s));
  return info.Env().Undefined();
}

// The CPU generator's full state, so checkpoints can resume a run's random stream exactly.
Napi::Value GetRngState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, "getRngState", [&]() -> Napi::Value {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    return wrap(env, gen.get_state());
  });
}

Napi::Value SetRngState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& s = unwrap(info[0], "setRngState");
  return guarded(env, "setRngState", [&]() -> Napi::Value {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(s);
    return env.Undefined();
  });
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  at::set_num_threads(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

// How many tensor handles are alive (leak diagnostics, like tf.memory().numTensors).
Napi::Value LiveTensors(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(slots.size() - freeSlots.size()));
}

// The CPU allocator's large-block cache counters (allocator.cc), for diagnosing page-fault-bound slowdowns.
Napi::Value AllocatorStatsValue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AllocatorStats s = allocatorStats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("hits", static_cast<double>(s.hits));
  o.Set("misses", static_cast<double>(s.misses));
  o.Set("overflows", static_cast<double>(s.overflows));
  o.Set("ownedBytes", static_cast<double>(s.ownedBytes));
  o.Set("cachedBytes", static_cast<double>(s.cachedBytes));
  o.Set("cachedBlocks", static_cast<double>(s.cachedBlocks));
  o.Set("capBytes", static_cast<double>(s.cap));
  return o;
}

Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(torch::cuda::device_count()));
}

Napi::Value CudaSynchronize(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), "cudaSynchronize", [&]() -> Napi::Value {
    if (torch::cuda::is_available()) torch::cuda::synchronize();
    return info.Env().Undefined();
  });
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", TORCH_VERSION);
  o.Set("cuda", Napi::Boolean::New(env, torch::cuda::is_available()));
  o.Set("cudaDevices", Napi::Number::New(env, static_cast<double>(torch::cuda::device_count())));
  o.Set("threads", Napi::Number::New(env, at::get_num_threads()));
  o.Set("allocator", allocatorName());
  o.Set("flushDenormals", Napi::Boolean::New(env, flushDenormals));
  o.Set("parallel", at::get_parallel_info());
  o.Set("config", at::show_config());
  return o;
}

Napi::Object InitImpl(Napi::Env env, Napi::Object exports) {
  mainThread = std::this_thread::get_id();
  // Denormal floats (below 1.2e-38 in float32) take the slow path of every x86 multiply: trained weights,
  // gradients and Adam's moments drift into them, and an ENet training step was measured 2.5x slower from
  // trained weights than from fresh ones. Flush them to zero (FTZ) and read them as zero (DAZ), as TensorFlow
  // does on CPUs. The mode is per thread: set here, before libtorch starts its OpenMP pool, every thread the
  // pool (and libuv) starts later inherits it. TSVISION_DENORMALS=keep keeps IEEE behaviour, PyTorch's default.
  const char* denormals = std::getenv("TSVISION_DENORMALS");
  flushDenormals = !(denormals && std::string(denormals) == "keep") && at::globalContext().setFlushDenormal(true);
  installAllocator();
  // libtorch picks a single thread on some machines; default to the cores the process may use.
  unsigned cores = std::thread::hardware_concurrency();
  if (!std::getenv("OMP_NUM_THREADS") && cores > 0) at::set_num_threads(static_cast<int>(cores));

#define fn(name, cb) exports.Set(name, Napi::Function::New(env, safe<cb>, name))
  fn("free", Free);
  fn("gcOwned", GcOwned);
  fn("fromBytes", FromBytes);
  fn("toBytes", ToBytes);
  fn("meta", Meta);
  fn("layout", Layout);
  fn("dataPtr", DataPtr);
  fn("shape", Shape);
  fn("item", Item);
  fn("setRequiresGrad", SetRequiresGrad);
  fn("grad", Grad);
  fn("setGrad", SetGrad);
  fn("isLeaf", IsLeaf);
  fn("retainGrad", RetainGrad);
  fn("backward", Backward);
  fn("autogradGrad", AutogradGrad);
  fn("registerHook", RegisterHook);
  fn("removeHook", RemoveHook);
  fn("setGradEnabled", SetGradEnabled);
  fn("isGradEnabled", IsGradEnabled);
  fn("enterAutocast", EnterAutocast);
  fn("exitAutocast", ExitAutocast);
  fn("isAutocastEnabled", IsAutocastEnabled);
  fn("manualSeed", ManualSeed);
  fn("getRngState", GetRngState);
  fn("setRngState", SetRngState);
  fn("setNumThreads", SetNumThreads);
  fn("getNumThreads", GetNumThreads);
  fn("cudaDeviceCount", CudaDeviceCount);
  fn("cudaSynchronize", CudaSynchronize);
  fn("info", Info);
  fn("liveTensors", LiveTensors);
  fn("allocatorStats", AllocatorStatsValue);

#undef fn
  initDispatch(env, exports);
  initDistributed(env, exports);
  initProfiler(env, exports);
  return exports;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) { return InitImpl(env, exports); }
}  // namespace tsv

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return tsv::Init(env, exports); }
NODE_API_MODULE(tsvision, InitAddon)
