// libtorch's own operator profiler (the legacy autograd profiler behind torch.autograd.profiler.profile):
// every ATen op and autograd backward function records a push and a pop event with its CPU time, in every
// thread the work reaches (at::launch tasks, the intra-op pool's callers). profilerStop returns the events;
// src/torch/profiler.ts pairs and aggregates them.
#include "handle.h"

#include <torch/csrc/autograd/profiler_legacy.h>

namespace tsv {
namespace {

namespace prof = torch::autograd::profiler;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

bool active = false;

Napi::Value ProfilerStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool shapes = info.Length() > 0 && info[0].ToBoolean().Value();
  return guarded(env, "profilerStart", [&]() -> Napi::Value {
    if (active) throw Napi::Error::New(env, "profilerStart: the profiler is already running");
    prof::enableProfilerLegacy(ProfilerConfig(ProfilerState::CPU, shapes));
    active = true;
    return env.Undefined();
  });
}

// Events as parallel arrays (one object per event would cost more than the events): name, kind (0 push,
// 1 pop, 2 other), thread, handle (pairs a pop with its push), cpu time in µs; shapes ("2x3,4" per input,
// ';'-separated) where recorded.
Napi::Value ProfilerStop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, "profilerStop", [&]() -> Napi::Value {
    if (!active) throw Napi::Error::New(env, "profilerStop: the profiler is not running");
    active = false;
    prof::thread_event_lists lists = prof::disableProfilerLegacy();
    size_t n = 0;
    for (const auto& l : lists) n += l.size();
    Napi::Array names = Napi::Array::New(env, n);
    Napi::Array shapes = Napi::Array::New(env, n);
    Napi::Uint8Array kinds = Napi::Uint8Array::New(env, n);
    Napi::Float64Array threads = Napi::Float64Array::New(env, n);
    Napi::Float64Array handles = Napi::Float64Array::New(env, n);
    Napi::Float64Array us = Napi::Float64Array::New(env, n);
    size_t i = 0;
    for (const auto& l : lists) {
      for (const auto& e : l) {
        names.Set(i, e.name());
        kinds[i] = e.kind() == prof::EventKind::PushRange ? 0 : e.kind() == prof::EventKind::PopRange ? 1 : 2;
        threads[i] = static_cast<double>(e.threadId());
        handles[i] = static_cast<double>(e.handle());
        us[i] = e.cpuUs();
        std::string s;
        for (const auto& shape : e.shapes()) {
          if (!s.empty()) s += ';';
          for (size_t d = 0; d < shape.size(); d++) s += (d ? "x" : "") + std::to_string(shape[d]);
        }
        shapes.Set(i, s);
        i++;
      }
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("names", names);
    o.Set("kinds", kinds);
    o.Set("threads", threads);
    o.Set("handles", handles);
    o.Set("us", us);
    o.Set("shapes", shapes);
    return o;
  });
}

}  // namespace

void initProfiler(Napi::Env env, Napi::Object exports) {
  exports.Set("profilerStart", Napi::Function::New(env, safe<ProfilerStart>, "profilerStart"));
  exports.Set("profilerStop", Napi::Function::New(env, safe<ProfilerStop>, "profilerStop"));
}

}  // namespace tsv
