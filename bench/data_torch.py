"""PyTorch-eager peer of bench/data.ts (a LivePeer: one epoch per request): the same segmentation data pipeline in one process (PIL decode,
normalize, random scale / crop / mirror as one affine grid per image, grid_sample bilinear for the image and
nearest for the labels with the ignore label outside, batches stacked)."""
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])
root, crop, bs = a["root"], a["crop"], a["batch"]
mean = torch.tensor(a["mean"]).view(1, 3, 1, 1)
std = torch.tensor(a["std"]).view(1, 3, 1, 1)
names = sorted(os.listdir(os.path.join(root, "images")))
rng = random.Random(0)


def theta(H, W, s, flip, top, left):
    # output pixel-edge coords → mirror → shift → unscale, in normalized coordinates (align_corners=False)
    m = np.array([[crop / 2, 0, crop / 2], [0, crop / 2, crop / 2], [0, 0, 1]], dtype=np.float64)
    if flip:
        m = np.array([[-1, 0, crop], [0, 1, 0], [0, 0, 1]]) @ m
    m = np.array([[1, 0, left], [0, 1, top], [0, 0, 1]]) @ m
    m = np.array([[1 / s, 0, 0], [0, 1 / s, 0], [0, 0, 1]]) @ m
    m = np.array([[2 / W, 0, -1], [0, 2 / H, -1], [0, 0, 1]]) @ m
    return torch.from_numpy(m[:2]).float()[None]


def offset(scaled, size):
    slack = math.floor(abs(scaled - size))
    k = rng.randrange(slack + 1)
    return k if scaled >= size else -k


def sample(name):
    img = torch.from_numpy(np.array(Image.open(os.path.join(root, "images", name)).convert("RGB"))).permute(2, 0, 1)[None]
    lab = torch.from_numpy(np.array(Image.open(os.path.join(root, "masks", name))))[None, None]
    x = (img.float() / 255 - mean) / std
    H, W = x.shape[-2:]
    s = 0.5 + 1.5 * rng.random()
    flip = rng.random() < 0.5
    t = theta(H, W, s, flip, offset(s * H, crop), offset(s * W, crop))
    grid = F.affine_grid(t, [1, 3, crop, crop], align_corners=False)
    xo = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    yo = F.grid_sample(lab.float() + 1, grid, mode="nearest", padding_mode="zeros", align_corners=False).round().long() - 1
    return xo[0], torch.where(yo < 0, torch.full_like(yo, 255), yo)[0, 0]


def epoch(seed):
    rng.seed(seed)
    t0 = time.perf_counter()
    order = list(range(len(names)))
    rng.shuffle(order)
    for k in range(0, len(order), bs):
        xs, ys = zip(*(sample(names[i]) for i in order[k:k + bs]))
        batch = (torch.stack(xs), torch.stack(ys))
    return time.perf_counter() - t0


# A live peer (bench/common.ts LivePeer): ready, then one epoch per request line.
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if req["task"] == "quit":
        break
    print(json.dumps({"seconds": epoch(req["seed"])}), flush=True)
