"""Independent PyTorch references of tsvision's classification models, shared by the tests
(test/models/params.test.ts) and the benchmark peer (bench/models_torch.py).

Written from the papers and the reference ports, not generated from tsvision; state-dict keys and shapes
must equal tsvision's, which is what the tests check.
- MobileNet v1 (Howard et al. 2017, Table 1): a 3x3/2 stem, 13 depthwise separable layers (Fig. 3: 3x3
  depthwise + BN + ReLU, 1x1 pointwise + BN + ReLU), global pool, dropout (TF-slim keep_prob 0.999), FC.
- SE-ResNet-50 (Hu et al. 2018, Fig. 3): torchvision's ResNet-50 with torchvision.ops.SqueezeExcitation(C,
  C/16) on each bottleneck's residual branch after bn3, before the addition.
- Xception (Chollet 2017, Fig. 5): the reference PyTorch port's definition (Cadene's pretrainedmodels /
  timm's legacy_xception): block1..block12, separable convs with a `conv1` depthwise and a `pointwise`.
- ENet (Paszke et al. 2016, Table 1, Fig. 2) as the authors' Torch code builds it: BN eps 1e-3, PReLU in
  the encoder and ReLU in the decoder, biases only on the middle convolutions, spatial dropout 0.01 / 0.1,
  max-unpooling shortcuts in the decoder and a 2x2/2 transposed conv at the end.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.ops import SqueezeExcitation


def conv_bn_relu(i, o, k, s, g=1):
    return nn.Sequential(nn.Conv2d(i, o, k, s, (k - 1) // 2, groups=g, bias=False), nn.BatchNorm2d(o), nn.ReLU())


class DepthwiseSeparable(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.depthwise = conv_bn_relu(i, i, 3, s, i)
        self.pointwise = conv_bn_relu(i, o, 1, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class MobileNetV1(nn.Module):
    # Table 1 after the stem: (output channels, stride).
    LAYERS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]

    def __init__(self, num_classes=1000):
        super().__init__()
        layers, c = [conv_bn_relu(3, 32, 3, 2)], 32
        for o, s in self.LAYERS:
            layers.append(DepthwiseSeparable(c, o, s))
            c = o
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.001)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        return self.fc(self.dropout(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)))


class SEBottleneck(Bottleneck):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        c = self.bn3.num_features
        self.se = SqueezeExcitation(c, c // 16)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        identity = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + identity)


def se_resnet50(num_classes=1000):
    return ResNet(SEBottleneck, [3, 4, 6, 3], num_classes=num_classes)


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
        if o != i or strides != 1:
            self.skip = nn.Conv2d(i, o, 1, stride=strides, bias=False)
            self.skipbn = nn.BatchNorm2d(o)
        else:
            self.skip = None
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
    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.block1 = Block(64, 128, 2, 2, start_with_relu=False)  # entry flow
        self.block2 = Block(128, 256, 2, 2)
        self.block3 = Block(256, 728, 2, 2)
        for k in range(4, 12):  # middle flow, repeated 8 times
            setattr(self, 'block%d' % k, Block(728, 728, 3, 1))
        self.block12 = Block(728, 1024, 2, 2, grow_first=False)  # exit flow
        self.conv3 = SeparableConv2d(1024, 1536)
        self.bn3 = nn.BatchNorm2d(1536)
        self.conv4 = SeparableConv2d(1536, 2048)
        self.bn4 = nn.BatchNorm2d(2048)
        self.dropout = nn.Dropout(0.5)  # §4.3
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        for k in range(1, 13):
            x = getattr(self, 'block%d' % k)(x)
        x = F.relu(self.bn4(self.conv4(F.relu(self.bn3(self.conv3(x))))))
        return self.fc(self.dropout(F.adaptive_avg_pool2d(x, 1).flatten(1)))


class ENetInitial(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.conv = nn.Conv2d(cin, 16 - cin, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(16, eps=1e-3)
        self.act = nn.PReLU(16)

    def forward(self, x):
        return self.act(self.bn(torch.cat([self.conv(x), F.max_pool2d(x, 2)], 1)))


def enet_act(c, decoder):
    return nn.ReLU() if decoder else nn.PReLU(c)


class ENetBottleneck(nn.Module):
    def __init__(self, c, kind, arg, p, decoder=False):
        super().__init__()
        i = c // 4
        self.project = nn.Sequential(nn.Conv2d(c, i, 1, bias=False), nn.BatchNorm2d(i, eps=1e-3), enet_act(i, decoder))
        if kind == 'asymmetric':
            main = [nn.Conv2d(i, i, (arg, 1), padding=(arg // 2, 0), bias=False), nn.Conv2d(i, i, (1, arg), padding=(0, arg // 2))]
        else:
            d = arg if kind == 'dilated' else 1
            main = [nn.Conv2d(i, i, 3, padding=d, dilation=d)]
        self.conv = nn.Sequential(*main, nn.BatchNorm2d(i, eps=1e-3), enet_act(i, decoder))
        self.expand = nn.Sequential(nn.Conv2d(i, c, 1, bias=False), nn.BatchNorm2d(c, eps=1e-3))
        self.dropout = nn.Dropout2d(p)
        self.act = enet_act(c, decoder)

    def forward(self, x):
        return self.act(x + self.dropout(self.expand(self.conv(self.project(x)))))


class ENetDown(nn.Module):
    def __init__(self, cin, cout, p):
        super().__init__()
        i = cout // 4
        self.cin, self.cout = cin, cout
        self.project = nn.Sequential(nn.Conv2d(cin, i, 2, 2, bias=False), nn.BatchNorm2d(i, eps=1e-3), nn.PReLU(i))
        self.conv = nn.Sequential(nn.Conv2d(i, i, 3, padding=1), nn.BatchNorm2d(i, eps=1e-3), nn.PReLU(i))
        self.expand = nn.Sequential(nn.Conv2d(i, cout, 1, bias=False), nn.BatchNorm2d(cout, eps=1e-3))
        self.dropout = nn.Dropout2d(p)
        self.act = nn.PReLU(cout)

    def forward(self, x):
        pooled, idx = F.max_pool2d(x, 2, return_indices=True)
        n, _, h, w = pooled.shape
        shortcut = torch.cat([pooled, pooled.new_zeros(n, self.cout - self.cin, h, w)], 1)
        return self.act(shortcut + self.dropout(self.expand(self.conv(self.project(x))))), idx


class ENetUp(nn.Module):
    def __init__(self, cin, cout, p):
        super().__init__()
        i = cin // 4
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout, eps=1e-3))
        self.project = nn.Sequential(nn.Conv2d(cin, i, 1, bias=False), nn.BatchNorm2d(i, eps=1e-3), nn.ReLU())
        self.upsample = nn.ConvTranspose2d(i, i, 3, 2, 1)
        self.upsampleBn = nn.BatchNorm2d(i, eps=1e-3)
        self.expand = nn.Sequential(nn.Conv2d(i, cout, 1, bias=False), nn.BatchNorm2d(cout, eps=1e-3))
        self.dropout = nn.Dropout2d(p)

    def forward(self, x, idx, size):
        shortcut = F.max_unpool2d(self.shortcut(x), idx, 2, output_size=size)
        up = F.relu(self.upsampleBn(self.upsample(self.project(x), output_size=size)))
        return F.relu(shortcut + self.dropout(self.expand(up)))


class ENet(nn.Module):
    SECTION2 = [('regular', 0), ('dilated', 2), ('asymmetric', 5), ('dilated', 4), ('regular', 0), ('dilated', 8), ('asymmetric', 5), ('dilated', 16)]

    def __init__(self, num_classes=19, in_channels=3):
        super().__init__()
        self.initial = ENetInitial(in_channels)
        self.bottleneck1_0 = ENetDown(16, 64, 0.01)
        self.stage1 = nn.Sequential(*[ENetBottleneck(64, 'regular', 0, 0.01) for _ in range(4)])
        self.bottleneck2_0 = ENetDown(64, 128, 0.1)
        self.stage2 = nn.Sequential(*[ENetBottleneck(128, k, a, 0.1) for k, a in self.SECTION2])
        self.stage3 = nn.Sequential(*[ENetBottleneck(128, k, a, 0.1) for k, a in self.SECTION2])
        self.bottleneck4_0 = ENetUp(128, 64, 0.1)
        self.stage4 = nn.Sequential(*[ENetBottleneck(64, 'regular', 0, 0.1, decoder=True) for _ in range(2)])
        self.bottleneck5_0 = ENetUp(64, 16, 0.1)
        self.stage5 = nn.Sequential(ENetBottleneck(16, 'regular', 0, 0.1, decoder=True))
        self.fullconv = nn.ConvTranspose2d(16, num_classes, 2, 2)

    def forward(self, x):
        x0 = self.initial(x)
        x, i1 = self.bottleneck1_0(x0)
        x1 = self.stage1(x)
        x, i2 = self.bottleneck2_0(x1)
        x = self.stage3(self.stage2(x))
        x = self.stage4(self.bottleneck4_0(x, i2, x1.shape[-2:]))
        x = self.stage5(self.bottleneck5_0(x, i1, x0.shape[-2:]))
        return self.fullconv(x)


MODELS = {'mobilenet_v1': MobileNetV1, 'se_resnet50': se_resnet50, 'xception': Xception, 'enet': ENet}
