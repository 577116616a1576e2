"""PyTorch-eager peer of bench/denormals.ts. 'prepare': ENet's weights as initialized (reference_models.ENet,
seed 0) written as safetensors. 'time': the forward and backward of a training step from a weights file (no
update, so the weights stay as they are); prints the median seconds."""
import json
import os
import statistics
import struct
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import reference_models  # noqa: E402

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def save(path, tensors):
    header, blobs, offset = {}, [], 0
    for k, t in tensors.items():
        b = t.contiguous().numpy().tobytes()
        header[k] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    dt = {"F32": torch.float32, "I64": torch.int64}
    return {k: torch.frombuffer(bytearray(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]), dtype=dt[v["dtype"]]).reshape(v["shape"]) for k, v in h.items() if k != "__metadata__"}


def enet():
    return reference_models.ENet(num_classes=args["classes"], in_channels=1)


if args["task"] == "prepare":
    torch.manual_seed(0)
    save(args["fresh"], {k: v.clone() for k, v in enet().state_dict().items()})
    print(json.dumps({}))
else:
    torch.manual_seed(0)
    m = enet()
    m.load_state_dict(load(args["weights"]))
    m.train()
    x = torch.randn(args["batch"], 1, args["size"], args["size"])
    y = torch.randint(0, args["classes"], (args["batch"], args["size"], args["size"]))
    times = []
    for step in range(args["steps"] + 1):
        t0 = time.perf_counter()
        m.zero_grad(set_to_none=True)
        m.loss(x, y).backward() if hasattr(m, "loss") else torch.nn.functional.cross_entropy(m(x), y).backward()
        if step > 0:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"seconds": statistics.median(times)}))
