"""PyTorch-eager peer of bench/models.ts: the same MobileNet v1, SE-ResNet-50 and Xception, timed the same way.

The architectures mirror src/models/{mobilenet,senet,resnet,xception}.ts layer for layer (and the references in
test/models/params.test.ts); the parameter count and every parameter shape, in order, must equal tsvision's.
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.ops import SqueezeExcitation

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
dev = args.get("device", "cpu")


def cbr(i, o, k, s, g=1):
    return nn.Sequential(nn.Conv2d(i, o, k, s, (k - 1) // 2, groups=g, bias=False), nn.BatchNorm2d(o), nn.ReLU())


class MobileNetV1(nn.Module):
    LAYERS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]

    def __init__(self):
        super().__init__()
        layers, c = [cbr(3, 32, 3, 2)], 32
        for o, s in self.LAYERS:
            layers += [cbr(c, c, 3, s, c), cbr(c, o, 1, 1)]
            c = o
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.001)
        self.fc = nn.Linear(1024, 1000)

    def forward(self, x):
        return self.fc(self.dropout(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)))


class SeparableConv2d(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.conv1 = nn.Conv2d(i, i, 3, 1, 1, groups=i, bias=False)
        self.pointwise = nn.Conv2d(i, o, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class Block(nn.Module):
    def __init__(self, i, o, reps, strides=1, start_with_relu=True, grow_first=True):
        super().__init__()
        self.skip = nn.Conv2d(i, o, 1, stride=strides, bias=False) if o != i or strides != 1 else None
        self.skipbn = nn.BatchNorm2d(o) if self.skip is not None else None
        rep, f = [], i
        if grow_first:
            rep += [nn.ReLU(), SeparableConv2d(i, o), nn.BatchNorm2d(o)]
            f = o
        for _ in range(reps - 1):
            rep += [nn.ReLU(), SeparableConv2d(f, f), nn.BatchNorm2d(f)]
        if not grow_first:
            rep += [nn.ReLU(), SeparableConv2d(i, o), nn.BatchNorm2d(o)]
        if not start_with_relu:
            rep = rep[1:]
        if strides != 1:
            rep.append(nn.MaxPool2d(3, strides, 1))
        self.rep = nn.Sequential(*rep)

    def forward(self, x):
        skip = self.skipbn(self.skip(x)) if self.skip is not None else x
        return self.rep(x) + skip


class Xception(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, 2, 0, bias=False); self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False); self.bn2 = nn.BatchNorm2d(64)
        blocks = [Block(64, 128, 2, 2, start_with_relu=False), Block(128, 256, 2, 2), Block(256, 728, 2, 2)]
        blocks += [Block(728, 728, 3, 1) for _ in range(8)]
        blocks += [Block(728, 1024, 2, 2, grow_first=False)]
        self.blocks = nn.Sequential(*blocks)
        self.conv3 = SeparableConv2d(1024, 1536); self.bn3 = nn.BatchNorm2d(1536)
        self.conv4 = SeparableConv2d(1536, 2048); self.bn4 = nn.BatchNorm2d(2048)
        self.dropout = nn.Dropout(0.5)  # Chollet §4.3, as tsvision's default
        self.fc = nn.Linear(2048, 1000)

    def forward(self, x):
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        x = self.blocks(x)
        x = F.relu(self.bn4(self.conv4(F.relu(self.bn3(self.conv3(x))))))
        return self.fc(self.dropout(F.adaptive_avg_pool2d(x, 1).flatten(1)))


def se_resnet50():
    # torchvision's ResNet-50 (v1.5: stride in the 3×3), an SE block (1×1 convs with bias, ReLU, sigmoid,
    # channel-wise scale) on each bottleneck's residual branch after bn3, before the addition (Hu et al., Fig. 3).
    m = torchvision.models.resnet50()
    for layer in [m.layer1, m.layer2, m.layer3, m.layer4]:
        for b in layer:
            c = b.bn3.num_features
            b.se = SqueezeExcitation(c, c // 16)
            bn3 = b.bn3
            b.bn3 = nn.Sequential(bn3, b.se)  # SE on the residual branch, before the addition
    return m


def sync():
    if dev.startswith("cuda"):
        torch.cuda.synchronize()


name = args["model"]
model = {"mobilenet_v1": MobileNetV1, "se_resnet50": se_resnet50, "xception": Xception}[name]().to(dev)
n_params = sum(p.numel() for p in model.parameters())
if n_params != args["params"]:
    sys.exit(f"{name}: PyTorch peer has {n_params} parameters, tsvision {args['params']}: architectures differ")
shapes = [list(p.shape) for p in model.parameters()]
if "shapes" in args and shapes != args["shapes"]:
    i = next((k for k, (a, b) in enumerate(zip(shapes, args["shapes"])) if a != b), min(len(shapes), len(args["shapes"])))
    sys.exit(f"{name}: parameter #{i} differs: PyTorch {shapes[i:i + 1]}, tsvision {args['shapes'][i:i + 1]} "
             f"({len(shapes)} vs {len(args['shapes'])} tensors): architectures differ")
size = args["size"]
out = {}
model.eval()
x1 = torch.randn(1, 3, size, size, device=dev)
with torch.no_grad():
    for _ in range(args["warmup"]):
        model(x1)
    sync()
    times = []
    for _ in range(args["n"]):
        t0 = time.perf_counter(); model(x1); sync(); times.append((time.perf_counter() - t0) * 1e3)
out["infer_ms"] = times
model.train()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
xb = torch.randn(args["batch"], 3, size, size, device=dev)
yb = torch.randint(0, 1000, (args["batch"],), device=dev)
times = []
for i in range(args["train_warmup"] + args["train_n"]):
    t0 = time.perf_counter()
    loss = F.cross_entropy(model(xb), yb)
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sync()
    if i >= args["train_warmup"]:
        times.append((time.perf_counter() - t0) * 1e3)
out["train_ms"] = times
if args.get("breakdown"):
    # Forward + loss alone, in train mode with grad (the graph is built, then dropped).
    times = []
    for _ in range(args["train_n"]):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(xb), yb); sync()
        times.append((time.perf_counter() - t0) * 1e3)
        del loss
    out["fwd_ms"] = times
print(json.dumps(out))
