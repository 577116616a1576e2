"""PyTorch peer of bench/slide.ts: sliding-window probabilities as PSPNet's authors compute them (hszhao/semseg,
tool/test.py scale_process: one window through the network at a time), on the same networks
(scripts/reference_models.py) with tsvision's weights and input."""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import reference_models  # noqa: E402
import safetensors_io  # noqa: E402

import live_peer  # noqa: E402

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
tensors, _ = safetensors_io.load(args["weights"])
x = tensors.pop("input.x")
model = reference_models.MODELS[args["model"]](num_classes=args["classes"]).eval()
model.load_state_dict(tensors)  # strict: every key and shape as tsvision's
crop_h, crop_w = args["crop"]


def scale_process(image):
    n, _, new_h, new_w = image.shape  # sizes here are window multiples' worth: no padding needed
    stride_h, stride_w = int(math.ceil(crop_h * 2 / 3)), int(math.ceil(crop_w * 2 / 3))
    grid_h = int(math.ceil(float(new_h - crop_h) / stride_h) + 1)
    grid_w = int(math.ceil(float(new_w - crop_w) / stride_w) + 1)
    prediction = torch.zeros(n, args["classes"], new_h, new_w)
    count = torch.zeros(new_h, new_w)
    for index_h in range(grid_h):
        for index_w in range(grid_w):
            s_h = index_h * stride_h
            e_h = min(s_h + crop_h, new_h)
            s_h = e_h - crop_h
            s_w = index_w * stride_w
            e_w = min(s_w + crop_w, new_w)
            s_w = e_w - crop_w
            out = F.softmax(model(image[:, :, s_h:e_h, s_w:e_w]), 1)
            count[s_h:e_h, s_w:e_w] += 1
            prediction[:, :, s_h:e_h, s_w:e_w] += out
    return prediction / count


with torch.no_grad():
    check = scale_process(x)
    safetensors_io.save(args["out"], {"p": check.contiguous()})

    def run():
        with torch.no_grad():
            scale_process(x)

    live_peer.serve({"slide": run}, {"ready": True})
