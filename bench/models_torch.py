"""PyTorch-eager peer of bench/models.ts: the same MobileNet v1, SE-ResNet-50, Xception, ENet, DeepLab-V3, PSPNet
and ICNet, timed the same way (the segmentation networks with their papers' training losses).

The architectures come from scripts/reference_models.py (independent PyTorch definitions, shared with the
tests); every state-dict key and shape must equal tsvision's, or the peer refuses to run.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import reference_models  # noqa: E402

import live_peer  # noqa: E402  (beside this script, on sys.path already)

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
dev = args.get("device", "cpu")


def sync():
    if dev.startswith("cuda"):
        torch.cuda.synchronize()


name = args["model"]
classes = args.get("classes", 1000)
model = reference_models.MODELS[name](num_classes=classes).to(dev)
n_params = sum(p.numel() for p in model.parameters())
if n_params != args["params"]:
    sys.exit(f"{name}: PyTorch peer has {n_params} parameters, tsvision {args['params']}: architectures differ")
shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
if "shapes" in args and shapes != args["shapes"]:
    diff = sorted(k for k in set(shapes) | set(args["shapes"]) if shapes.get(k) != args["shapes"].get(k))
    sys.exit(f"{name}: state dicts differ at {len(diff)} keys, e.g. {diff[:3]}: PyTorch "
             f"{[shapes.get(k) for k in diff[:3]]}, tsvision {[args['shapes'].get(k) for k in diff[:3]]}")
h, w = args["size"]
x1 = torch.randn(1, 3, h, w, device=dev)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
xb = torch.randn(args["batch"], 3, h, w, device=dev)
yb = torch.randint(0, classes, (args["batch"], h, w) if args.get("seg") else (args["batch"],), device=dev)


def infer():
    model.eval()
    with torch.no_grad():
        model(x1)


def loss_fn():
    return model.loss(xb, yb) if hasattr(model, "loss") else F.cross_entropy(model(xb), yb)


def train_step():
    model.train()
    loss = loss_fn()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def forward_only():
    # Forward + loss alone, in train mode with grad (the graph is built, then dropped).
    model.train()
    loss_fn()


def train_step_bf16():
    # Mixed precision as PyTorch's recipe: forward and loss under autocast, backward outside.
    model.train()
    with torch.autocast(dev.split(":")[0], dtype=torch.bfloat16):
        loss = loss_fn()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


TASKS = {"infer": infer, "train": train_step, "fwd": forward_only, "train16": train_step_bf16}
ready = {"ready": True, "bf16": "not asked"}
if args.get("bf16"):
    try:
        train_step_bf16()
        ready["bf16"] = "ok"
    except Exception as e:  # noqa: BLE001 - e.g. ENet's transposed convolution on a bfloat16 activation
        ready["bf16"] = str(e).split("\n")[0][:120]

# Serve timing requests from the bench (LivePeer) until it quits.
live_peer.serve(TASKS, ready, sync)
