"""PyTorch peer of bench/upsample.ts: ENet's transposed convolutions (F.conv_transpose2d) and the whole ENet
(scripts/reference_models.py) on tsvision's tensors and weights, eager, forward alone or with backward."""
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
layers = args["layers"]
net = reference_models.ENet(num_classes=args["classes"]).eval()
net.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("net.")})  # strict: every key and shape

def layer(name, train):
    x, w, b, g = (t[f"{name}.{k}"] for k in "xwbg")
    s, p, op = layers[name]
    if train:
        w, b = w.clone().requires_grad_(), b.clone().requires_grad_()
        xg = x.clone().requires_grad_()
        def run():
            (F.conv_transpose2d(xg, w, b, stride=s, padding=p, output_padding=op) * g).sum().backward()
        return run
    def run():
        with torch.no_grad():
            F.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=op)
    return run

x, xb, g = t["enet.x"], t["enet.xb"], t["enet.g"]
def enet_infer():
    with torch.no_grad():
        net(x)
train_net = reference_models.ENet(num_classes=args["classes"]).train()
train_net.load_state_dict(net.state_dict())
def enet_train():
    train_net.zero_grad(set_to_none=True)
    (train_net(xb) * g).sum().backward()

out = {}
with torch.no_grad():
    for name, (s, p, op) in layers.items():
        out[name] = F.conv_transpose2d(t[f"{name}.x"], t[f"{name}.w"], t[f"{name}.b"], stride=s, padding=p, output_padding=op)
    out["enet"] = net(x)
safetensors_io.save(args["out"], out)
tasks = {f"{n}:{m}": layer(n, m == "train") for n in layers for m in ("infer", "train")}
tasks["enet:infer"] = enet_infer
tasks["enet:train"] = enet_train
live_peer.serve(tasks, {"ready": True})
