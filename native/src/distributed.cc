// torch.distributed for JavaScript: libtorch's own c10d stores (TCP, file), process groups (gloo always;
// NCCL where libtorch was built with it) and collectives on tensor handles. No protocol of our own: a
// tsvision rank and a PyTorch rank can share one process group (the set-up mirrors
// torch.distributed.init_process_group's, key prefixes and store-based barrier included).
#include "handle.h"

// Debian's libtorch-dev ships ProcessGroupGloo (in libtorch_cpu) and libgloo-dev its headers; the header
// only declares the class under USE_C10D_GLOO.
#if __has_include(<gloo/context.h>)
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
// TSV_NCCL comes from binding.gyp, only when libtorch has CUDA and nccl.h is found (a link-time fact: the
// symbols live in libtorch_cuda).
#ifdef TSV_NCCL
#define USE_C10D_NCCL 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <unordered_map>

namespace tsv {

namespace {

using Ms = std::chrono::milliseconds;

// Stores and process groups live here, named to JavaScript by small integer ids: an id that was destroyed or
// never existed is a clear error, never a dangling pointer. Never destroyed (as addon.cc's tensor table): at
// process exit, a process group's threads must not be joined from a static destructor.
std::unordered_map<uint32_t, c10::intrusive_ptr<c10d::Store>>& stores = *new std::unordered_map<uint32_t, c10::intrusive_ptr<c10d::Store>>;
struct Group {
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  std::string backend;
};
std::unordered_map<uint32_t, Group>& groups = *new std::unordered_map<uint32_t, Group>;
uint32_t nextId = 1;

std::string str(const Napi::Value& v) { return v.ToString().Utf8Value(); }
int64_t integer(const Napi::Object& o, const char* key, int64_t fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Int64Value() : fallback;
}
std::string seconds(int64_t ms) {
  return ms % 1000 ? std::to_string(ms) + " ms" : std::to_string(ms / 1000) + " s";
}

c10::intrusive_ptr<c10d::Store> storeById(Napi::Env env, const Napi::Value& v, const char* op) {
  auto it = v.IsNumber() ? stores.find(v.As<Napi::Number>().Uint32Value()) : stores.end();
  if (it == stores.end()) throw Napi::Error::New(env, std::string(op) + ": no such store (destroyed, or never created)");
  return it->second;
}
Group& groupById(Napi::Env env, const Napi::Value& v, const char* op) {
  auto it = v.IsNumber() ? groups.find(v.As<Napi::Number>().Uint32Value()) : groups.end();
  if (it == groups.end()) throw Napi::Error::New(env, std::string(op) + ": no such process group (destroyed, or never initialized)");
  return it->second;
}


// Store and process-group creation wait for the other ranks (up to the timeout): they run on a libuv worker
// thread and resolve a promise with the object's id, so the event loop — signals, the launcher's pipes —
// stays alive meanwhile. `work` runs on the worker; `publish` (the table insert) on the main thread.
class Task : public Napi::AsyncWorker {
 public:
  Task(Napi::Env env, std::string op, uint32_t id, std::function<void()> work, std::function<void()> publish)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), op_(std::move(op)), id_(id),
        work_(std::move(work)), publish_(std::move(publish)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const c10::Error& e) {
      SetError(op_ + ": " + e.what_without_backtrace());
    } catch (const std::exception& e) {
      SetError(op_ + ": " + e.what());
    } catch (...) {
      SetError(op_ + ": unknown native error");
    }
  }
  void OnOK() override {
    publish_();
    deferred_.Resolve(Napi::Number::New(Env(), id_));
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string op_;
  uint32_t id_;
  std::function<void()> work_, publish_;
};

// The first line of a libtorch message (its C++ context lines mean nothing to a JavaScript user).
std::string firstLine(const std::string& m) { return m.substr(0, m.find('\n')); }

c10::intrusive_ptr<c10d::Store> makeTcpStore(const std::string& host, int64_t port, bool isServer, int64_t worldSize, int64_t timeoutMs, int64_t rank) {
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<uint16_t>(port);
  opts.isServer = isServer;
  opts.numWorkers = static_cast<size_t>(worldSize);
  opts.timeout = Ms(timeoutMs);
  opts.multiTenant = true;  // as torch.distributed's tcp:// and env:// rendezvous
  std::string who = rank >= 0 ? "rank " + std::to_string(rank) : std::string(isServer ? "the store server" : "a store client");
  std::string where = host + ":" + std::to_string(port);
  try {
    return c10::make_intrusive<c10d::TCPStore>(host, opts);
  } catch (const std::exception& e) {
    // c10::Error derives from std::exception; what() of either, first line only.
    const auto* ce = dynamic_cast<const c10::Error*>(&e);
    std::string m = firstLine(ce ? ce->what_without_backtrace() : e.what());
    if (isServer && m.find("listen") != std::string::npos) throw std::runtime_error(who + " could not start the store at " + where + ": " + m);
    if (isServer) {
      throw std::runtime_error(who + " started the store at " + where + " but not all " + std::to_string(worldSize) + " ranks joined within " +
                               seconds(timeoutMs) + ": " + m);
    }
    throw std::runtime_error(who + " could not reach the store at " + where + " within " + seconds(timeoutMs) + ": " + m);
  }
}

// createStore({kind: 'tcp', host, port, isServer, worldSize, timeoutMs, rank} | {kind: 'file', path, worldSize,
// timeoutMs}) -> Promise<storeId>. A TCP server waits for worldSize clients, as torch.distributed's rank 0 does.
Napi::Value CreateStore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "createStore: options must be an object");
  auto o = info[0].As<Napi::Object>();
  std::string kind = str(o.Get("kind"));
  int64_t worldSize = integer(o, "worldSize", 1);
  int64_t timeoutMs = integer(o, "timeoutMs", 300000);
  int64_t rank = integer(o, "rank", -1);
  if (worldSize < 1) throw Napi::RangeError::New(env, "createStore: worldSize must be >= 1");
  if (timeoutMs < 1) throw Napi::RangeError::New(env, "createStore: timeoutMs must be >= 1");
  std::function<c10::intrusive_ptr<c10d::Store>()> make;
  if (kind == "tcp") {
    std::string host = str(o.Get("host"));
    int64_t port = integer(o, "port", -1);
    bool isServer = o.Get("isServer").ToBoolean().Value();
    if (port < 0 || port > 65535) throw Napi::RangeError::New(env, "createStore: port must be in [0, 65535]");
    make = [=]() { return makeTcpStore(host, port, isServer, worldSize, timeoutMs, rank); };
  } else if (kind == "file") {
    std::string path = str(o.Get("path"));
    if (path.empty()) throw Napi::TypeError::New(env, "createStore: a file store needs a path");
    make = [=]() -> c10::intrusive_ptr<c10d::Store> {
      auto s = c10::make_intrusive<c10d::FileStore>(path, static_cast<int>(worldSize));
      s->setTimeout(Ms(timeoutMs));
      return s;
    };
  } else {
    throw Napi::TypeError::New(env, "createStore: kind must be 'tcp' or 'file', got '" + kind + "'");
  }
  uint32_t id = nextId++;
  auto made = std::make_shared<c10::intrusive_ptr<c10d::Store>>();
  auto* task = new Task(env, "createStore", id, [make, made]() { *made = make(); }, [id, made]() { stores[id] = *made; });
  task->Queue();
  return task->promise();
}

// The store-based barrier torch.distributed runs at the end of init_process_group: every rank adds 1 to one
// key and waits until it reads worldSize. A PyTorch rank in the same group blocks on it, so do the same.
void storeBasedBarrier(c10d::Store& store, const std::string& key, int64_t rank, int64_t worldSize, int64_t timeoutMs) {
  store.add(key, 1);
  auto start = std::chrono::steady_clock::now();
  for (int64_t n = store.add(key, 0); n != worldSize; n = store.add(key, 0)) {
    if (std::chrono::steady_clock::now() - start > Ms(timeoutMs)) {
      throw std::runtime_error("rank " + std::to_string(rank) + ": only " + std::to_string(n) + " of " + std::to_string(worldSize) +
                               " ranks joined the process group within " + seconds(timeoutMs));
    }
    std::this_thread::sleep_for(Ms(10));
  }
}

#ifdef USE_C10D_GLOO
// As torch.distributed's ProcessGroupGloo(store, rank, size, timeout): the interfaces of GLOO_SOCKET_IFNAME,
// else the address this host's name resolves to (gloo falls back to loopback), two threads per device.
c10::intrusive_ptr<c10d::ProcessGroup> makeGloo(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, Ms timeout) {
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  const char* ifnames = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifnames && std::strlen(ifnames) > 1) {
    std::string all = ifnames;
    for (size_t at = 0; at < all.size();) {
      size_t comma = std::min(all.find(',', at), all.size());
      if (comma > at) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(all.substr(at, comma - at)));
      at = comma + 1;
    }
  } else {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  opts->threads = static_cast<int>(opts->devices.size() * 2);
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, opts);
}
#endif

// The backends this addon was built with.
Napi::Value Backends(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env());
#ifdef USE_C10D_GLOO
  a.Set(a.Length(), "gloo");
#endif
#ifdef TSV_NCCL
  a.Set(a.Length(), "nccl");
#endif
  return a;
}

// createProcessGroup(storeId, backend, rank, worldSize, timeoutMs) -> Promise<groupId>, built exactly as
// init_process_group builds its default group: PrefixStore("default_pg"), then PrefixStore("0") for the
// backend, then the store-based barrier and the sequence number (rank 0 sets it, the others read it).
Napi::Value CreateProcessGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto base = storeById(env, info[0], "initProcessGroup");
  std::string backend = str(info[1]);
  int64_t rank = info[2].ToNumber().Int64Value();
  int64_t size = info[3].ToNumber().Int64Value();
  int64_t timeoutMs = info[4].ToNumber().Int64Value();
  if (size < 1 || rank < 0 || rank >= size) {
    throw Napi::RangeError::New(env, "initProcessGroup: rank " + std::to_string(rank) + " is outside [0, " + std::to_string(size) + ")");
  }
  if (timeoutMs < 1) throw Napi::RangeError::New(env, "initProcessGroup: timeoutMs must be >= 1");
  std::function<c10::intrusive_ptr<c10d::ProcessGroup>(const c10::intrusive_ptr<c10d::Store>&)> make;
  if (backend == "gloo") {
#ifdef USE_C10D_GLOO
    make = [=](const c10::intrusive_ptr<c10d::Store>& s) { return makeGloo(s, int(rank), int(size), Ms(timeoutMs)); };
#else
    throw Napi::Error::New(env, "initProcessGroup: this addon was built without gloo's headers (install libgloo-dev and rebuild)");
#endif
  } else if (backend == "nccl") {
#ifdef TSV_NCCL
    make = [=](const c10::intrusive_ptr<c10d::Store>& s) -> c10::intrusive_ptr<c10d::ProcessGroup> {
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = Ms(timeoutMs);
      return c10::make_intrusive<c10d::ProcessGroupNCCL>(s, int(rank), int(size), opts);
    };
#else
    throw Napi::Error::New(env, "initProcessGroup: NCCL is not compiled in (libtorch without CUDA, or no nccl.h at build time); use backend 'gloo'");
#endif
  } else {
    throw Napi::TypeError::New(env, "initProcessGroup: backend must be 'gloo' or 'nccl', got '" + backend + "'");
  }
  uint32_t id = nextId++;
  auto made = std::make_shared<c10::intrusive_ptr<c10d::ProcessGroup>>();
  auto work = [=]() {
    base->setTimeout(Ms(timeoutMs));
    auto store = c10::make_intrusive<c10d::PrefixStore>("default_pg", base);
    auto pg = make(c10::make_intrusive<c10d::PrefixStore>("0", store));
    storeBasedBarrier(*store, "store_based_barrier_key:1", rank, size, timeoutMs);
    pg->setSequenceNumberForGroup();
    *made = pg;
  };
  auto* task = new Task(env, "initProcessGroup", id, work, [id, made, backend]() { groups[id] = Group{*made, backend}; });
  task->Queue();
  return task->promise();
}

// Collectives block the calling (main) thread until every rank has joined: inside a training step every rank
// waits for the others anyway, and gloo's own timeout (the group's) bounds the wait when a peer is gone.
void waitFor(const c10::intrusive_ptr<c10d::Work>& work) { work->wait(); }

const at::Tensor& collectiveTensor(const Napi::Value& v, const char* op) {
  const at::Tensor& t = unwrap(v, op);
  if (!t.is_contiguous()) throw std::invalid_argument(std::string("needs a contiguous tensor, got a strided ") + describe(t) + " (call .contiguous())");
  return t;
}

// allReduce(groupId, tensor, op): in place, op 'sum' | 'avg' | 'max' | 'min' | 'product'. gloo has no AVG:
// avg is a sum divided by the world size, as PyTorch's DDP does.
Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Group& g = groupById(env, info[0], "allReduce");
  std::string op = str(info[2]);
  return guarded(env, "allReduce", [&]() -> Napi::Value {
    const at::Tensor& t = collectiveTensor(info[1], "allReduce");
    c10d::AllreduceOptions opts;
    if (op == "sum" || op == "avg") opts.reduceOp = c10d::ReduceOp::SUM;
    else if (op == "max") opts.reduceOp = c10d::ReduceOp::MAX;
    else if (op == "min") opts.reduceOp = c10d::ReduceOp::MIN;
    else if (op == "product") opts.reduceOp = c10d::ReduceOp::PRODUCT;
    else throw std::invalid_argument("op must be 'sum', 'avg', 'max', 'min' or 'product', got '" + op + "'");
    // Checked before the collective, so that no rank is left holding a sum instead of a mean.
    if (op == "avg" && !at::isFloatingType(t.scalar_type())) throw std::invalid_argument("'avg' needs a floating-point tensor, got " + describe(t));
    std::vector<at::Tensor> ts{t};
    waitFor(g.pg->allreduce(ts, opts));
    if (op == "avg") t.div_(g.pg->getSize());
    return env.Undefined();
  });
}

// broadcast(groupId, tensor, root): in place; afterwards every rank holds root's values.
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Group& g = groupById(env, info[0], "broadcast");
  int64_t root = info[2].ToNumber().Int64Value();
  return guarded(env, "broadcast", [&]() -> Napi::Value {
    const at::Tensor& t = collectiveTensor(info[1], "broadcast");
    if (root < 0 || root >= g.pg->getSize()) throw std::invalid_argument("root " + std::to_string(root) + " is outside [0, " + std::to_string(g.pg->getSize()) + ")");
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    std::vector<at::Tensor> ts{t};
    waitFor(g.pg->broadcast(ts, opts));
    return env.Undefined();
  });
}

// allGather(groupId, tensor) -> one new tensor per rank, in rank order.
Napi::Value AllGather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Group& g = groupById(env, info[0], "allGather");
  return guarded(env, "allGather", [&]() -> Napi::Value {
    const at::Tensor& t = collectiveTensor(info[1], "allGather");
    std::vector<std::vector<at::Tensor>> out(1);
    for (int i = 0; i < g.pg->getSize(); ++i) out[0].push_back(at::empty_like(t));
    std::vector<at::Tensor> in{t};
    waitFor(g.pg->allgather(out, in));
    Napi::Array a = Napi::Array::New(env, out[0].size());
    for (size_t i = 0; i < out[0].size(); ++i) a.Set(i, wrap(env, out[0][i]));
    return a;
  });
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Group& g = groupById(env, info[0], "barrier");
  return guarded(env, "barrier", [&]() -> Napi::Value {
    waitFor(g.pg->barrier());
    return env.Undefined();
  });
}

// groupInfo(groupId) -> [rank, size, backend]
Napi::Value GroupInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Group& g = groupById(env, info[0], "groupInfo");
  Napi::Array a = Napi::Array::New(env, 3);
  a.Set(0u, Napi::Number::New(env, g.pg->getRank()));
  a.Set(1u, Napi::Number::New(env, g.pg->getSize()));
  a.Set(2u, g.backend);
  return a;
}

// destroyProcessGroup(groupId) / destroyStore(storeId): drop the reference (a gloo group joins its threads;
// a TCP server closes). Destroying twice is harmless.
Napi::Value DestroyProcessGroup(const Napi::CallbackInfo& info) {
  if (info[0].IsNumber()) groups.erase(info[0].As<Napi::Number>().Uint32Value());
  return info.Env().Undefined();
}
Napi::Value DestroyStore(const Napi::CallbackInfo& info) {
  if (info[0].IsNumber()) stores.erase(info[0].As<Napi::Number>().Uint32Value());
  return info.Env().Undefined();
}

// storeSet(storeId, key, value) / storeGet(storeId, key) -> string (waits up to the store's timeout) /
// storeAdd(storeId, key, n) -> the new value: small coordination between ranks outside any collective.
Napi::Value StoreSet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto s = storeById(env, info[0], "storeSet");
  return guarded(env, "storeSet", [&]() -> Napi::Value {
    std::string v = str(info[2]);
    s->set(str(info[1]), std::vector<uint8_t>(v.begin(), v.end()));
    return env.Undefined();
  });
}
Napi::Value StoreGet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto s = storeById(env, info[0], "storeGet");
  return guarded(env, "storeGet", [&]() -> Napi::Value {
    auto v = s->get(str(info[1]));
    return Napi::String::New(env, std::string(v.begin(), v.end()));
  });
}
Napi::Value StoreAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto s = storeById(env, info[0], "storeAdd");
  return guarded(env, "storeAdd", [&]() -> Napi::Value {
    return Napi::Number::New(env, static_cast<double>(s->add(str(info[1]), info[2].ToNumber().Int64Value())));
  });
}

}  // namespace

// Adds the dist* functions to the addon's exports (called from addon.cc's Init).
void initDistributed(Napi::Env env, Napi::Object exports) {
#define fn(name, cb) exports.Set(name, Napi::Function::New(env, safe<cb>, name))
  fn("distBackends", Backends);
  fn("distCreateStore", CreateStore);
  fn("distCreateProcessGroup", CreateProcessGroup);
  fn("distAllReduce", AllReduce);
  fn("distBroadcast", Broadcast);
  fn("distAllGather", AllGather);
  fn("distBarrier", Barrier);
  fn("distGroupInfo", GroupInfo);
  fn("distDestroyProcessGroup", DestroyProcessGroup);
  fn("distDestroyStore", DestroyStore);
  fn("distStoreSet", StoreSet);
  fn("distStoreGet", StoreGet);
  fn("distStoreAdd", StoreAdd);
#undef fn
}

}  // namespace tsv
