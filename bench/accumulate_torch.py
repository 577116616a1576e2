"""PyTorch-eager peer of bench/accumulate.ts: one training step of a reference segmentation network on a batch,
whole or in micro-batches (each loss weighed by its share, backward, one SGD step); prints the median step
time and this process's peak resident memory."""
import json
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import reference_models  # noqa: E402

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
model = reference_models.MODELS[args["model"]](num_classes=args["classes"])
n_params = sum(p.numel() for p in model.parameters())
if n_params != args["params"]:
    sys.exit(f"{args['model']}: PyTorch peer has {n_params} parameters, tsvision {args['params']}: architectures differ")
model.train()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
n, s, parts = args["batch"], args["size"], args["parts"]
x = torch.randn(n, 3, s, s)
y = torch.randint(0, args["classes"], (n, s, s))


def loss_of(xc, yc):
    return model.loss(xc, yc) if hasattr(model, "loss") else torch.nn.functional.cross_entropy(model(xc), yc)


times = []
for step in range(args["steps"] + 1):
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    for xc, yc in zip(x.tensor_split(parts), y.tensor_split(parts)):
        (loss_of(xc, yc) * (xc.shape[0] / n)).backward()
    opt.step()
    if step > 0:
        times.append(time.perf_counter() - t0)
print(json.dumps({"seconds": statistics.median(times), "maxRssMb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
