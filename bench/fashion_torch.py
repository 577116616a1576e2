"""What bench/train_torch.py and bench/mimic_torch.py share: Debian's Fashion-MNIST as uint8 tensors, and the
default CNN of src/models/cnn.ts (conv/BN/ReLU pairs, max-pooling, a 128-unit hidden layer)."""
import gzip

import numpy as np
import torch
import torch.nn as nn

ROOT = "/usr/share/datasets/fashion-mnist"


def idx(name, offset):
    with gzip.open(f"{ROOT}/{name}", "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def train_images():
    return torch.from_numpy(idx("train-images-idx3-ubyte.gz", 16).copy()).reshape(-1, 1, 28, 28)


def train_labels():
    return torch.from_numpy(idx("train-labels-idx1-ubyte.gz", 8).astype(np.int64))


def cbr(i, o):
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU())


def cnn(a=32, b=64):
    return nn.Sequential(cbr(1, a), cbr(a, a), nn.MaxPool2d(2), cbr(a, b), cbr(b, b), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(7),
                         nn.Flatten(), nn.Linear(b * 49, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))


def normalize(x):
    return (x.float() / 255 - 0.286) / 0.353
