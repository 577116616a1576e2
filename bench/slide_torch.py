"""PyTorch peer of bench/slide.ts: sliding-window probabilities as PSPNet's authors compute them (hszhao/semseg,
tool/test.py scale_process: one window through the network at a time), on the same networks
(scripts/reference_models.py) with tsvision's weights and input."""
import json
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

with torch.no_grad():
    check = reference_models.scale_process(model, x, crop_h, crop_w, args["classes"])
    safetensors_io.save(args["out"], {"p": check.contiguous()})

    def run():
        with torch.no_grad():
            reference_models.scale_process(model, x, crop_h, crop_w, args["classes"])

    live_peer.serve({"slide": run}, {"ready": True})
