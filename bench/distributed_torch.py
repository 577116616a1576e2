"""PyTorch peer of bench/distributed-rank.ts: torchvision's ResNet-18 (tsvision's resnet18 has its layout), the
same loop, alone or as one rank of a gloo group under torch.nn.parallel.DistributedDataParallel."""
import json
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision

o = json.loads(sys.argv[1])
torch.set_num_threads(o["threads"])
if o["mode"] == "ddp":
    dist.init_process_group("gloo", init_method=o["initMethod"], rank=o["rank"], world_size=o["world"])
torch.manual_seed(0)
model = torchvision.models.resnet18(num_classes=10)
net = torch.nn.parallel.DistributedDataParallel(model) if o["mode"] == "ddp" else model
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
torch.manual_seed(1 + o["rank"])
x = torch.randn(o["batch"], 3, o["size"], o["size"])
y = torch.randint(0, 10, (o["batch"],))
ms = []
for i in range(o["warmup"] + o["steps"]):
    t0 = time.perf_counter()
    loss = F.cross_entropy(net(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if i >= o["warmup"]:
        ms.append((time.perf_counter() - t0) * 1e3)
if o["mode"] == "ddp":
    dist.destroy_process_group()
print("RESULT " + json.dumps({"ms": ms}), flush=True)
