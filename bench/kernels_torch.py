"""PyTorch peer of bench/kernels.ts: the layers whose libtorch kernels tsvision replaces (ENet's transposed
convolutions with F.conv_transpose2d, max pooling with F.max_pool2d, adaptive average pooling) and the whole ENet
(scripts/reference_models.py), on tsvision's tensors and weights, eager, forward alone or with backward."""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import reference_models  # noqa: E402
import safetensors_io  # noqa: E402

import live_peer  # noqa: E402

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
t, _ = safetensors_io.load(args["tensors"])
cases = args["cases"]


def layer_fn(name):
    """The layer as fn(x, *params), and its parameters."""
    c = cases[name]
    if c["kind"] == "convt":
        s, p, op = c["stride"], c["padding"], c["outputPadding"]
        return (lambda x, w, b: F.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=op)), [t[f"{name}.w"], t[f"{name}.b"]]
    if c["kind"] == "adaptive":
        size = c["size"]
        return (lambda x: F.adaptive_avg_pool2d(x, size)), []
    k, s, p = c["kernel"], c["stride"], c["padding"]
    return (lambda x: F.max_pool2d(x, k, s, p)), []


def layer(name, train):
    fn, params = layer_fn(name)
    x, g = t[f"{name}.x"], t[f"{name}.g"]
    if train:
        leaves = [q.clone().requires_grad_() for q in [x, *params]]

        def run():
            for q in leaves:
                q.grad = None
            (fn(*leaves) * g).sum().backward()
        return run

    def run():
        with torch.no_grad():
            fn(x, *params)
    return run


net = reference_models.ENet(num_classes=args["classes"]).eval()
net.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("net.")})  # strict: every key and shape
train_net = reference_models.ENet(num_classes=args["classes"]).train()
train_net.load_state_dict(net.state_dict())
x, xb, g = t["enet.x"], t["enet.xb"], t["enet.g"]


def enet_infer():
    with torch.no_grad():
        net(x)


def enet_train():
    train_net.zero_grad(set_to_none=True)
    (train_net(xb) * g).sum().backward()


out = {}
with torch.no_grad():
    for name in cases:
        fn, params = layer_fn(name)
        out[name] = fn(t[f"{name}.x"], *params)
    out["enet"] = net(x)
safetensors_io.save(args["out"], out)
tasks = {f"{n}:{m}": layer(n, m == "train") for n in cases for m in ("infer", "train")}
tasks["enet:infer"] = enet_infer
tasks["enet:train"] = enet_train
live_peer.serve(tasks, {"ready": True})
