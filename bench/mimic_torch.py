"""PyTorch-eager peer of bench/mimic.ts: the shallow student regressing the CNN teacher's logits (L2), the
teacher run on every batch under no_grad, as a distillation loop usually is; data loading included."""
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


class Shallow(nn.Module):
    """src/models/shallow.ts with its defaults: 5×5 conv 32, max-pooled to 7×7, hidden 1024."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 32, 5, padding=2)
        self.hidden = nn.Linear(32 * 49, 1024)
        self.fc = nn.Linear(1024, 10)

    def forward(self, x):
        x = F.adaptive_max_pool2d(F.relu(self.conv(x)), 7).flatten(1)
        return self.fc(F.relu(self.hidden(x)))


images = torch.from_numpy(idx("train-images-idx3-ubyte.gz", 16).copy()).reshape(-1, 1, 28, 28)
teacher = nn.Sequential(cbr(1, 32), cbr(32, 32), nn.MaxPool2d(2), cbr(32, 64), cbr(64, 64), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(7),
                        nn.Flatten(), nn.Linear(64 * 49, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10)).eval()
student = Shallow()
opt = torch.optim.Adam(student.parameters(), lr=1e-3)
bs = args["batch"]
limit = args["batches"]
t0 = time.perf_counter()
for epoch in range(args["epochs"]):
    perm = torch.randperm(images.shape[0])
    n = 0
    for k in range(0, images.shape[0], bs):
        if limit and n >= limit:
            break
        x = (images.index_select(0, perm[k:k + bs]).float() / 255 - 0.286) / 0.353
        with torch.no_grad():
            z = teacher(x)
        loss = 0.5 * (student(x) - z).square().sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += 1
print(json.dumps({"seconds": time.perf_counter() - t0}))
