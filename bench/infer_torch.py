"""PyTorch peer of bench/infer.ts: batch-1 inference of the same networks (scripts/reference_models.py, every
state-dict key and shape checked against tsvision's), eager and after torch.jit.optimize_for_inference."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import reference_models  # noqa: E402

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


def run(m):
    def f():
        with torch.no_grad():
            m(x)
    return f


TASKS = {"eager": run(model), "optimized": run(optimized)}

# Serve timing requests from the bench (LivePeer) until it quits.
live_peer.serve(TASKS, {"ready": True, "optimized": how})
