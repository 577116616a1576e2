"""PyTorch-eager peer of bench/augment.ts (a LivePeer): torchvision's TrivialAugmentWide, RandomErasing and
RandomResizedCrop (antialiased) on the same uint8 / float tensors, one image at a time as a torchvision
DataLoader worker applies them, then torch.stack; one timed pass per request."""
import json
import sys
import time

import torch
from torchvision import transforms as T

a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])
ta = T.TrivialAugmentWide()
erase = T.RandomErasing(p=0.5)
rrc = T.RandomResizedCrop(a["crop"], antialias=True)
torch.manual_seed(a["seed"])
small = (torch.rand(a["batch"], 3, 32, 32) * 255).floor().to(torch.uint8)
large = (torch.rand(a["batch"], 3, 224, 224) * 255).floor().to(torch.uint8)
photo = (torch.rand(a["batch"], 3, 300, 400) * 255).floor().to(torch.uint8)
normalized = torch.randn(a["batch"], 3, 224, 224)
work = {
    "ta32": lambda: torch.stack([ta(x) for x in small]),
    "ta224": lambda: torch.stack([ta(x) for x in large]),
    "erase": lambda: torch.stack([erase(x) for x in normalized]),
    "rrc": lambda: torch.stack([rrc(x) for x in photo]),
}
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if req["task"] == "quit":
        break
    t0 = time.perf_counter()
    work[req["task"]]()
    print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)
