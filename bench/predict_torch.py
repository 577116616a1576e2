"""PyTorch peer of bench/predict.ts: the same files to top-5 classes with PIL and torchvision's transforms,
and the same MobileNet v1 weights (tsvision's safetensors loaded into scripts/reference_models.py)."""
import json
import os
import sys
import time

import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import reference_models  # noqa: E402
import safetensors_io  # noqa: E402

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
model = reference_models.MODELS["mobilenet_v1"](num_classes=1000).eval()
tensors, _ = safetensors_io.load(args["weights"])
model.load_state_dict(tensors)
prep = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(), transforms.Normalize(args["mean"], args["std"])])
files = args["files"]


def classify_all(batch):
    with torch.no_grad():
        for i in range(0, len(files), batch):
            x = torch.stack([prep(Image.open(f).convert("RGB")) for f in files[i:i + batch]])
            torch.softmax(model(x), 1).topk(5, 1)


print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if req.get("task") == "quit":
        break
    t0 = time.perf_counter()
    classify_all(req["batch"])
    print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)
