"""PyTorch-eager peer of bench/augment.ts (a LivePeer): torchvision's TrivialAugmentWide, RandomErasing and
RandomResizedCrop (antialiased) on the same uint8 / float tensors, one image at a time as a torchvision
DataLoader worker applies them, then torch.stack; one timed pass per request. TrivialAugment applies the
operations tsvision drew for that pass (its _apply_op), so both sides do the same work."""
import json
import sys
import time

import torch
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import _apply_op

a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])
erase = T.RandomErasing(p=0.5)
rrc = T.RandomResizedCrop(a["crop"], antialias=True)
torch.manual_seed(a["seed"])
small = (torch.rand(a["batch"], 3, 32, 32) * 255).floor().to(torch.uint8)
large = (torch.rand(a["batch"], 3, 224, 224) * 255).floor().to(torch.uint8)
photo = (torch.rand(a["batch"], 3, 300, 400) * 255).floor().to(torch.uint8)
normalized = torch.randn(a["batch"], 3, 224, 224)
ta = T.TrivialAugmentWide()


def one(x, op, m):
    # TrivialAugmentWide.forward per image: its operation space (built each call), then the operation
    # drawn — here tsvision's draw instead of its own torch.randint ones.
    ta._augmentation_space(ta.num_magnitude_bins)
    return _apply_op(x, op, m, interpolation=InterpolationMode.NEAREST, fill=None)


def trivial(images, draws):
    return torch.stack([one(x, op, m) for x, (op, m) in zip(images, draws)])


work = {
    "ta32": lambda req: trivial(small, req["draws"]),
    "ta224": lambda req: trivial(large, req["draws"]),
    "erase": lambda req: torch.stack([erase(x) for x in normalized]),
    "rrc": lambda req: torch.stack([rrc(x) for x in photo]),
}
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if req["task"] == "quit":
        break
    t0 = time.perf_counter()
    work[req["task"]](req)
    print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)
