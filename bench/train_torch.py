"""PyTorch-eager peer of bench/train.ts: one Fashion-MNIST epoch of the same CNN, data loading included."""
import gzip
import json
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
root = "/usr/share/datasets/fashion-mnist"


def idx(name, offset):
    with gzip.open(f"{root}/{name}", "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def cbr(i, o):
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU())


t_load = time.perf_counter()
images = torch.from_numpy(idx("train-images-idx3-ubyte.gz", 16).copy()).reshape(-1, 1, 28, 28)
labels = torch.from_numpy(idx("train-labels-idx1-ubyte.gz", 8).astype(np.int64))
load_s = time.perf_counter() - t_load
a, b = args["widths"]
model = nn.Sequential(cbr(1, a), cbr(a, a), nn.MaxPool2d(2), cbr(a, b), cbr(b, b), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(7),
                      nn.Flatten(), nn.Linear(b * 49, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
bs = args["batch"]
limit = args["batches"]
t0 = time.perf_counter()
perm = torch.randperm(images.shape[0])
n = 0
for k in range(0, images.shape[0], bs):
    if limit and n >= limit:
        break
    idx_ = perm[k:k + bs]
    x = (images.index_select(0, idx_).float() / 255 - 0.286) / 0.353
    y = labels.index_select(0, idx_)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(args.get("bf16"))):
        loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    n += 1
print(json.dumps({"seconds": time.perf_counter() - t0, "batches": n, "load_seconds": load_s}))
