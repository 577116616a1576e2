"""PyTorch-eager peer of bench/engine.ts: the same networks and steps, timed the same way."""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
dev = args.get("device", "cpu")


class ResNet10(nn.Module):
    def __init__(self, c=64):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(c)
        self.convs = nn.ModuleList([nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(9)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(c) for _ in range(9)])
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x)))
        for i in range(0, 8, 2):
            y = F.relu(self.bns[i](self.convs[i](x)))
            x = F.relu(self.bns[i + 1](self.convs[i + 1](y)) + x)
        x = F.relu(self.bns[8](self.convs[8](x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class DSNet(nn.Module):
    def __init__(self, widths=(32, 64, 128, 128, 256, 256)):
        super().__init__()
        self.stem = nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(widths[0])
        blocks = []
        for cin, cout, s in zip(widths[:-1], widths[1:], (1, 2, 1, 2, 1)):
            blocks += [nn.Conv2d(cin, cin, 3, stride=s, padding=1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(),
                       nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(widths[-1], 10)

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(self.blocks(x), 1).flatten(1))


def sync():
    if dev.startswith("cuda"):
        torch.cuda.synchronize()


def train_times(model, x, y, n, warmup):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    out = []
    for i in range(warmup + n):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        if i >= warmup:
            out.append((time.perf_counter() - t0) * 1e3)
    return out


kind = args["kind"]
if kind == "add":
    a = torch.ones(1, device=dev)
    b = torch.ones(1, device=dev)
    n = args["n"]
    for _ in range(1000):
        a + b
    t0 = time.perf_counter()
    for _ in range(n):
        a + b
    print(json.dumps({"us_per_op": (time.perf_counter() - t0) / n * 1e6}))
else:
    model = (ResNet10() if kind == "resnet10" else DSNet()).to(dev)
    x = torch.randn(args["batch"], 3, args["size"], args["size"], device=dev)
    y = torch.randint(0, 10, (args["batch"],), device=dev)
    print(json.dumps({"ms": train_times(model, x, y, args["n"], args["warmup"])}))
