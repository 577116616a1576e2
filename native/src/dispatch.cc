// Boxed calls through the c10 dispatcher: one generic path reaches every ATen operator (forward, autograd,
// CPU and CUDA kernels) by its schema, so the addon needs almost no per-op C++. JavaScript looks an operator
// up once (lookup -> integer id) and then calls it with positional arguments in schema order; `undefined`
// (or a missing trailing argument) takes the schema's default.
#include "handle.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <sstream>

namespace tsv {
namespace {

// Elementwise operators — one tensor out, tensors and scalars in — are called unboxed through a typed
// handle: no IValue stack, no boxing wrapper. They are most of a training step's small ops, where that work
// is a visible share of the call (BENCHMARKS.md, Engine: the per-op overhead). Everything else, and any call
// these forms cannot take as given, goes boxed.
using T = const at::Tensor&;
using S = const at::Scalar&;
struct Typed {
  c10::optional<c10::TypedOperatorHandle<at::Tensor(T)>> t;
  c10::optional<c10::TypedOperatorHandle<at::Tensor(T, T)>> tt;
  c10::optional<c10::TypedOperatorHandle<at::Tensor(T, T, S)>> tts;
  c10::optional<c10::TypedOperatorHandle<at::Tensor(T, S)>> ts;
  c10::optional<c10::TypedOperatorHandle<at::Tensor(T, S, S)>> tss;
  std::string kinds;                   // "T", "TT", "TTS", "TS" or "TSS"; empty: boxed only
  std::vector<c10::optional<at::Scalar>> defaults;  // per argument, the schema's default for a Scalar
};

struct Op {
  c10::OperatorHandle handle;
  std::string name;  // "aten::conv2d" or "aten::add.Tensor", for error messages
  Typed typed;
};
std::vector<Op> ops;

Typed typedFor(const c10::OperatorHandle& h) {
  Typed out;
  const auto& schema = h.schema();
  if (schema.is_mutable() || schema.is_vararg() || schema.returns().size() != 1 ||
      schema.returns()[0].type()->kind() != c10::TypeKind::TensorType)
    return out;
  std::string kinds;
  for (const auto& a : schema.arguments()) {
    auto k = a.type()->kind();
    if (k == c10::TypeKind::TensorType) kinds += 'T';
    else if (k == c10::TypeKind::NumberType) kinds += 'S';
    else return out;
    const auto& d = a.default_value();
    out.defaults.push_back(k == c10::TypeKind::NumberType && d && d->isScalar() ? c10::optional<at::Scalar>(d->toScalar())
                                                                                 : c10::nullopt);
  }
  try {  // typed() checks the C++ signature the kernels were registered with; a mismatch stays boxed.
    if (kinds == "T") out.t = h.typed<at::Tensor(T)>();
    else if (kinds == "TT") out.tt = h.typed<at::Tensor(T, T)>();
    else if (kinds == "TTS") out.tts = h.typed<at::Tensor(T, T, S)>();
    else if (kinds == "TS") out.ts = h.typed<at::Tensor(T, S)>();
    else if (kinds == "TSS") out.tss = h.typed<at::Tensor(T, S, S)>();
    else return out;
  } catch (const c10::Error&) {
    return Typed();
  }
  out.kinds = kinds;
  return out;
}

[[noreturn]] void typeError(Napi::Env env, const Op& op, const c10::Argument& a, const char* want) {
  throw Napi::TypeError::New(env, op.name + ": argument '" + a.name() + "' must be " + want);
}

int64_t toInt(Napi::Env env, const Op& op, const c10::Argument& a, const Napi::Value& v) {
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d != static_cast<double>(static_cast<int64_t>(d))) typeError(env, op, a, "an integer");
    return static_cast<int64_t>(d);
  }
  if (v.IsBigInt()) {
    bool lossless;
    return v.As<Napi::BigInt>().Int64Value(&lossless);
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? 1 : 0;
  if (v.IsString()) {
    // ScalarType, Layout and MemoryFormat travel as ints in schemas; we accept their names.
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s == "strided") return static_cast<int64_t>(at::kStrided);
    if (s == "contiguous_format") return static_cast<int64_t>(at::MemoryFormat::Contiguous);
    if (s == "channels_last") return static_cast<int64_t>(at::MemoryFormat::ChannelsLast);
    if (s == "preserve_format") return static_cast<int64_t>(at::MemoryFormat::Preserve);
    return static_cast<int64_t>(parseDtype(s));
  }
  typeError(env, op, a, "an integer");
}

double toDouble(Napi::Env env, const Op& op, const c10::Argument& a, const Napi::Value& v) {
  if (!v.IsNumber()) typeError(env, op, a, "a number");
  return v.As<Napi::Number>().DoubleValue();
}

// Integral JS numbers become integer Scalars so integer tensors keep their dtype (t.add(1) on int64).
at::Scalar numberScalar(double d) {
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return at::Scalar(static_cast<int64_t>(d));
  return at::Scalar(d);
}

c10::IValue toScalar(Napi::Env env, const Op& op, const c10::Argument& a, const Napi::Value& v) {
  if (v.IsBoolean()) return c10::IValue(at::Scalar(v.As<Napi::Boolean>().Value()));
  if (!v.IsNumber()) typeError(env, op, a, "a number");
  return c10::IValue(numberScalar(v.As<Napi::Number>().DoubleValue()));
}

c10::IValue convert(Napi::Env env, const Op& op, const c10::Argument& a, const c10::TypePtr& type,
                    const Napi::Value& v);

// Schemas carry ScalarType, Layout and MemoryFormat as ints; an out-of-range int would index libtorch's
// tables out of bounds (found by the fuzz test), so check it against the enum's size.
int64_t checkEnum(Napi::Env env, const Op& op, const c10::Argument& a, int64_t v) {
  c10::TypePtr t = a.real_type();
  if (t->kind() == c10::TypeKind::OptionalType) t = t->castRaw<c10::OptionalType>()->getElementType();
  int64_t n = -1;
  const char* what = "";
  switch (t->kind()) {
    case c10::TypeKind::ScalarTypeType: n = static_cast<int64_t>(at::ScalarType::NumOptions); what = "a dtype"; break;
    case c10::TypeKind::LayoutType: n = static_cast<int64_t>(at::Layout::NumOptions); what = "a layout"; break;
    case c10::TypeKind::MemoryFormatType: n = static_cast<int64_t>(at::MemoryFormat::NumOptions); what = "a memory format"; break;
    default: return v;
  }
  if (v < 0 || v >= n) typeError(env, op, a, (std::string(what) + " name such as 'float32'").c_str());
  return v;
}

c10::IValue convertList(Napi::Env env, const Op& op, const c10::Argument& a, const c10::TypePtr& elem,
                        const Napi::Value& v) {
  auto kind = elem->kind();
  // A single number where the schema wants int[N] (stride=2 for int[2]) expands, as in Python.
  if (!v.IsArray()) {
    if (kind == c10::TypeKind::IntType && v.IsNumber() && a.N()) {
      return c10::IValue(std::vector<int64_t>(*a.N(), toInt(env, op, a, v)));
    }
    if (kind == c10::TypeKind::BoolType && v.IsBoolean() && a.N()) {
      c10::List<bool> l;
      for (int i = 0; i < *a.N(); ++i) l.push_back(v.As<Napi::Boolean>().Value());
      return c10::IValue(l);
    }
    typeError(env, op, a, "an array");
  }
  Napi::Array arr = v.As<Napi::Array>();
  uint32_t n = arr.Length();
  switch (kind) {
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType: {
      std::vector<int64_t> out(n);
      for (uint32_t i = 0; i < n; ++i) out[i] = toInt(env, op, a, arr.Get(i));
      return c10::IValue(out);
    }
    case c10::TypeKind::FloatType: {
      std::vector<double> out(n);
      for (uint32_t i = 0; i < n; ++i) out[i] = toDouble(env, op, a, arr.Get(i));
      return c10::IValue(out);
    }
    case c10::TypeKind::BoolType: {
      c10::List<bool> out;
      for (uint32_t i = 0; i < n; ++i) {
        Napi::Value e = arr.Get(i);
        if (!e.IsBoolean()) typeError(env, op, a, "an array of booleans");
        out.push_back(e.As<Napi::Boolean>().Value());
      }
      return c10::IValue(out);
    }
    case c10::TypeKind::TensorType: {
      c10::List<at::Tensor> out;
      out.reserve(n);
      for (uint32_t i = 0; i < n; ++i) out.push_back(unwrap(arr.Get(i), a.name().c_str()));
      return c10::IValue(out);
    }
    case c10::TypeKind::OptionalType: {
      c10::List<c10::optional<at::Tensor>> out;
      for (uint32_t i = 0; i < n; ++i) {
        Napi::Value e = arr.Get(i);
        if (e.IsNull() || e.IsUndefined()) out.push_back(c10::nullopt);
        else out.push_back(unwrap(e, a.name().c_str()));
      }
      return c10::IValue(out);
    }
    default:
      typeError(env, op, a, ("a supported list (" + elem->str() + "[] is not)").c_str());
  }
}

c10::IValue convert(Napi::Env env, const Op& op, const c10::Argument& a, const c10::TypePtr& type,
                    const Napi::Value& v) {
  switch (type->kind()) {
    case c10::TypeKind::TensorType:
      return c10::IValue(unwrap(v, a.name().c_str()));
    case c10::TypeKind::OptionalType:
      if (v.IsNull() || v.IsUndefined()) return c10::IValue();
      return convert(env, op, a, type->castRaw<c10::OptionalType>()->getElementType(), v);
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType:
    case c10::TypeKind::ScalarTypeType:
    case c10::TypeKind::LayoutType:
    case c10::TypeKind::MemoryFormatType:
      return c10::IValue(checkEnum(env, op, a, toInt(env, op, a, v)));
    case c10::TypeKind::FloatType:
      return c10::IValue(toDouble(env, op, a, v));
    case c10::TypeKind::NumberType:
      return toScalar(env, op, a, v);
    case c10::TypeKind::BoolType:
      if (!v.IsBoolean()) typeError(env, op, a, "a boolean");
      return c10::IValue(v.As<Napi::Boolean>().Value());
    case c10::TypeKind::StringType:
      if (!v.IsString()) typeError(env, op, a, "a string");
      return c10::IValue(v.As<Napi::String>().Utf8Value());
    case c10::TypeKind::DeviceObjType:
      if (!v.IsString()) typeError(env, op, a, "a device string such as 'cpu' or 'cuda:0'");
      return c10::IValue(c10::Device(v.As<Napi::String>().Utf8Value()));
    case c10::TypeKind::GeneratorType:
      typeError(env, op, a, "null (explicit generators are not supported; use manualSeed)");
    case c10::TypeKind::ListType:
      return convertList(env, op, a, type->castRaw<c10::ListType>()->getElementType(), v);
    default:
      typeError(env, op, a, ("of a supported type (" + type->str() + " is not)").c_str());
  }
}

Napi::Value fromIValue(Napi::Env env, const c10::IValue& v) {
  if (v.isTensor()) return wrap(env, v.toTensor());
  if (v.isNone()) return env.Null();
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isScalar()) return Napi::Number::New(env, v.toScalar().toDouble());
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isTensorList()) {
    auto l = v.toTensorList();
    Napi::Array out = Napi::Array::New(env, l.size());
    for (size_t i = 0; i < l.size(); ++i) out.Set(i, wrap(env, l.get(i)));
    return out;
  }
  if (v.isIntList()) {
    auto l = v.toIntVector();
    Napi::Array out = Napi::Array::New(env, l.size());
    for (size_t i = 0; i < l.size(); ++i) out.Set(i, Napi::Number::New(env, static_cast<double>(l[i])));
    return out;
  }
  if (v.isTuple()) {
    const auto& el = v.toTupleRef().elements();
    Napi::Array out = Napi::Array::New(env, el.size());
    for (size_t i = 0; i < el.size(); ++i) out.Set(i, fromIValue(env, el[i]));
    return out;
  }
  throw Napi::TypeError::New(env, "unsupported return type " + v.tagKind());
}

// Describes the actual arguments, so an error names the shapes and dtypes that caused it.
std::string describeArgs(const Napi::CallbackInfo& info) {
  std::ostringstream os;
  for (size_t i = 1; i < info.Length(); ++i) {
    if (i > 1) os << ", ";
    Napi::Value v = info[i];
    if (isHandle(v)) {
      const at::Tensor* t = peek(v);
      os << (t ? describe(*t) : std::string("<disposed tensor>"));
    } else if (v.IsArray()) {
      os << "[" << v.As<Napi::Array>().Length() << " items]";
    } else if (v.IsUndefined()) {
      os << "default";
    } else {
      os << v.ToString().Utf8Value();
    }
  }
  return os.str();
}

// Runs an operator call, turning libtorch's failures into JS Errors that name the op and the arguments'
// shapes and dtypes; errors already worded for JavaScript pass through.
template <typename F>
void namingArgs(const Napi::CallbackInfo& info, const Op& op, F&& body) {
  try {
    body();
  } catch (const c10::Error& e) {
    throw Napi::Error::New(info.Env(), op.name + "(" + describeArgs(info) + "): " + e.what_without_backtrace());
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), op.name + "(" + describeArgs(info) + "): " + e.what());
  }
}

// The typed call, where the arguments fit: every tensor given, every scalar a number or defaulted. Returns
// false, having done nothing, where they do not; the boxed path then runs (and words any error).
bool callTyped(const Napi::CallbackInfo& info, const Op& op, size_t given, Napi::Value& result) {
  const Typed& ty = op.typed;
  const size_t n = ty.kinds.size();
  const at::Tensor* tensors[2] = {nullptr, nullptr};
  at::Scalar scalars[2];
  size_t nt = 0, ns = 0;
  for (size_t i = 0; i < n; ++i) {
    Napi::Value v = i < given ? info[i + 1] : info.Env().Undefined();
    if (ty.kinds[i] == 'T') {
      const at::Tensor* t = peek(v);
      if (!t) return false;
      tensors[nt++] = t;
    } else if (v.IsUndefined()) {
      if (!ty.defaults[i]) return false;
      scalars[ns++] = *ty.defaults[i];
    } else {
      if (!v.IsNumber()) return false;
      scalars[ns++] = numberScalar(v.As<Napi::Number>().DoubleValue());
    }
  }
  at::Tensor r;
  namingArgs(info, op, [&] {
    if (ty.t) r = ty.t->call(*tensors[0]);
    else if (ty.tt) r = ty.tt->call(*tensors[0], *tensors[1]);
    else if (ty.tts) r = ty.tts->call(*tensors[0], *tensors[1], scalars[0]);
    else if (ty.ts) r = ty.ts->call(*tensors[0], scalars[0]);
    else r = ty.tss->call(*tensors[0], scalars[0], scalars[1]);
  });
  result = wrap(info.Env(), std::move(r));
  return true;
}

template <bool kReturn>
Napi::Value callOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  if (id >= ops.size()) throw Napi::RangeError::New(env, "unknown operator id");
  const Op& op = ops[id];
  const auto& schema = op.handle.schema();
  const auto& args = schema.arguments();
  size_t given = info.Length() - 1;
  if (given > args.size())
    throw Napi::TypeError::New(env, op.name + ": takes " + std::to_string(args.size()) + " arguments, got " +
                                        std::to_string(given));
  if (kReturn && !op.typed.kinds.empty()) {
    Napi::Value r;
    if (callTyped(info, op, given, r)) return r;
  }
  torch::jit::Stack stack;
  stack.reserve(args.size());
  namingArgs(info, op, [&] {
    for (size_t i = 0; i < args.size(); ++i) {
      const auto& a = args[i];
      Napi::Value v = i < given ? info[i + 1] : env.Undefined();
      if (v.IsUndefined()) {
        if (!a.default_value()) throw Napi::TypeError::New(env, op.name + ": missing argument '" + a.name() + "'");
        stack.push_back(*a.default_value());
      } else {
        stack.push_back(convert(env, op, a, a.type(), v));
      }
    }
    op.handle.callBoxed(stack);
  });
  if (!kReturn) return env.Undefined();
  if (stack.size() == 1) return fromIValue(env, stack[0]);
  Napi::Array out = Napi::Array::New(env, stack.size());
  for (size_t i = 0; i < stack.size(); ++i) out.Set(i, fromIValue(env, stack[i]));
  return out;
}

Napi::Value Lookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  std::string overload = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  auto h = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!h) {
    throw Napi::Error::New(env, "no operator " + name + (overload.empty() ? "" : "." + overload) +
                                    " in this libtorch (" + TORCH_VERSION + ")");
  }
  ops.push_back({*h, overload.empty() ? name : name + "." + overload, typedFor(*h)});
  std::ostringstream schema;
  schema << h->schema();
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", Napi::Number::New(env, static_cast<double>(ops.size() - 1)));
  out.Set("schema", schema.str());
  return out;
}

}  // namespace

void initDispatch(Napi::Env env, Napi::Object exports) {
  exports.Set("lookup", Napi::Function::New(env, safe<Lookup>, "lookup"));
  exports.Set("call", Napi::Function::New(env, safe<callOp<true>>, "call"));
  exports.Set("callVoid", Napi::Function::New(env, safe<callOp<false>>, "callVoid"));
}

}  // namespace tsv
