"""PyTorch peer of bench/infer.ts: batch-1 inference of the same networks (scripts/reference_models.py, every
state-dict key and shape checked against tsvision's), eager and after torch.jit.optimize_for_inference."""
import copy
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import reference_models  # noqa: E402
import safetensors_io  # noqa: E402

import live_peer  # noqa: E402  (beside this script, on sys.path already)

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
name = args["model"]
model = reference_models.MODELS[name](num_classes=args["classes"]).eval()
n_params = sum(p.numel() for p in model.parameters())
if n_params != args["params"]:
    sys.exit(f"{name}: PyTorch peer has {n_params} parameters, tsvision {args['params']}: architectures differ")
shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
if shapes != args["shapes"]:
    diff = sorted(k for k in set(shapes) | set(args["shapes"]) if shapes.get(k) != args["shapes"].get(k))
    sys.exit(f"{name}: state dicts differ at {len(diff)} keys, e.g. {diff[:3]}")
h, w = args["size"]
x = torch.randn(1, 3, h, w)
if args.get("weights"):
    # tsvision's own weights and input: the same network on both sides.
    tensors, _ = safetensors_io.load(args["weights"])
    x = tensors.pop("input.x")
    model.load_state_dict(tensors)

def candidates():
    """PyTorch's own inference optimizations, strongest first; the first that runs this network is timed."""
    yield "optimize_for_inference", lambda: torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x, strict=False)))
    # freeze alone folds BatchNorm into convolutions but keeps the ordinary layout.
    yield "jit.freeze (optimize_for_inference fails on this network in 1.13)", lambda: torch.jit.freeze(torch.jit.trace(model, x, strict=False))


optimized, how = model, "eager (no optimization ran)"
with torch.no_grad():
    for label, make in candidates():
        try:
            m = make()
            m(x)
            optimized, how = m, label
            break
        except Exception:  # noqa: BLE001 - libtorch 1.13's oneDNN pooling refuses some sizes; try the next
            continue


def run(m, inp=x):
    def f():
        with torch.no_grad():
            m(inp)
    return f


TASKS = {"eager": run(model), "optimized": run(optimized)}
info = {"ready": True, "optimized": how}

def seconds(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


if args.get("bf16"):
    # libtorch 1.13 in bfloat16: ConvTranspose2d computes a plain convolution and max_unpool2d has no kernel,
    # so ENet runs those in float32, as tsvision does.
    unpool = reference_models.F.max_unpool2d
    reference_models.F.max_unpool2d = lambda t, i, *a, **k: unpool(t.float(), i, *a, **k).to(t.dtype)
    low = copy.deepcopy(model).bfloat16()
    for mod in low.modules():
        if isinstance(mod, torch.nn.ConvTranspose2d):
            mod.float()
            mod.register_forward_pre_hook(lambda m, a: tuple(t.float() if torch.is_tensor(t) and t.is_floating_point() else t for t in a))
            mod.register_forward_hook(lambda m, a, out: out.bfloat16())
    xb = x.bfloat16()
    # Every way PyTorch 1.13 can run the bfloat16 model; the fastest of those that keep the answer is timed.
    ways = []
    with torch.no_grad():
        want = model(x)
        for label, make in [
            ("eager", lambda: low),
            ("optimize_for_inference", lambda: torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(low, xb, strict=False)))),
            ("jit.freeze", lambda: torch.jit.freeze(torch.jit.trace(low, xb, strict=False))),
        ]:
            try:
                m = make()
                error = ((m(xb).float() - want).norm() / want.norm()).item()
            except Exception:  # noqa: BLE001 - not every pass takes bfloat16 in 1.13
                continue
            if error < 0.1:  # a pass that runs but changes the answer beyond bfloat16's rounding does not count
                m(xb)
                ts = sorted(seconds(run(m, xb)) for _ in range(3))
                ways.append((ts[1], label, m, error))
    _, label, fast, error = min(ways, key=lambda w: w[0])
    info["bf16"] = f"{label}, the fastest of {len(ways)}"
    info["bf16_error"] = error
    TASKS["bf16"] = run(fast, xb)

# Serve timing requests from the bench (LivePeer) until it quits.
live_peer.serve(TASKS, info)
