"""PyTorch-eager peer of bench/mimic.ts: the shallow student regressing the CNN teacher's logits (L2), the
teacher run on every batch under no_grad, as a distillation loop usually is; data loading included."""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from fashion_torch import cnn, normalize, train_images

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)


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


images = train_images()
teacher = cnn().eval()
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
        x = normalize(images.index_select(0, perm[k:k + bs]))
        with torch.no_grad():
            z = teacher(x)
        loss = 0.5 * (student(x) - z).square().sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += 1
print(json.dumps({"seconds": time.perf_counter() - t0}))
