"""PyTorch-eager peer of bench/train.ts: one Fashion-MNIST epoch of the same CNN, data loading included."""
import json
import sys
import time

import torch
import torch.nn.functional as F

from fashion_torch import cnn, normalize, train_images, train_labels

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)

t_load = time.perf_counter()
images = train_images()
labels = train_labels()
load_s = time.perf_counter() - t_load
model = cnn(*args["widths"])
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
    x = normalize(images.index_select(0, idx_))
    y = labels.index_select(0, idx_)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(args.get("bf16"))):
        loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    n += 1
print(json.dumps({"seconds": time.perf_counter() - t0, "batches": n, "load_seconds": load_s}))
