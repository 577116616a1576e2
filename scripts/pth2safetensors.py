#!/usr/bin/python3
"""Converts a PyTorch .pth/.pt state dict (or a checkpoint holding one under 'state_dict' / 'model') into
safetensors, so PyTorch-trained weights load into tsvision with Module.loadStateDict.

    /usr/bin/python3 scripts/pth2safetensors.py resnet50.pth resnet50.safetensors [--prefix module.]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help=".pth/.pt file")
    ap.add_argument("dst", help="output .safetensors file")
    ap.add_argument("--prefix", default="", help="strip this prefix from every key (e.g. 'module.' from DataParallel)")
    a = ap.parse_args()
    if not os.path.exists(a.src):
        sys.exit(f"pth2safetensors: {a.src}: no such file")
    obj = torch.load(a.src, map_location="cpu")
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        sys.exit(f"pth2safetensors: {a.src} holds a {type(obj).__name__}, not a state dict")
    tensors = {}
    for k, v in obj.items():
        if not torch.is_tensor(v):
            continue
        if a.prefix and k.startswith(a.prefix):
            k = k[len(a.prefix):]
        tensors[k] = v
    tmp = a.dst + ".tmp"
    safetensors_io.save(tmp, tensors, {"format": "pt", "source": os.path.basename(a.src)})
    os.replace(tmp, a.dst)
    print(f"wrote {len(tensors)} tensors to {a.dst}")


if __name__ == "__main__":
    main()
